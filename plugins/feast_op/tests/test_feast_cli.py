"""``funnel feast schema``, run as the installed console script on a real feature repo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from funnel import ColumnSchema, Ensemble, Schema
from funnel_feast import QueryFeast

FUNNEL = Path(sys.executable).parent / "funnel"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FUNNEL), *args], capture_output=True, text=True, timeout=180)


def assert_clean_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out.stderr
    for needle in needles:
        assert needle in errors[0], out.stderr


def test_cli_module_does_not_import_feast():
    code = "import funnel_feast.cli, sys; print('feast' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_help_lists_the_feast_group():
    top = run("--help")
    assert top.returncode == 0 and "feast" in top.stdout
    schema = run("feast", "schema", "--help")
    assert schema.returncode == 0
    assert "REPO VIEW" in schema.stdout and "--prefix" in schema.stdout and "--include-id" in schema.stdout


def test_plugins_json_lists_register_commands():
    out = run("plugins", "--json")
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert "register_commands" in plugins["feast"]["hooks"]


def test_schema_matches_from_feature_view(sqlite_repo):
    out = run("feast", "schema", str(sqlite_repo), "item_features", "--prefix", "item", "--include-id", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert (info["view"], info["entity"], info["entity_dtype"]) == ("item_features", "item_id", "int64")
    op = QueryFeast.from_feature_view(sqlite_repo, "item_features", "item_id", output_prefix="item", include_id=True)
    graph_out = Ensemble(["item_id"] >> op, Schema([ColumnSchema("item_id", "int64")])).output_schema
    assert info["columns"] == [{"name": c.name, "dtype": c.dtype, "is_list": c.is_list} for c in graph_out]
    assert [c["name"] for c in info["columns"]] == [
        "item_id", "item_category", "item_price", "item_brand", "item_popular", "item_found"
    ]


def test_schema_text_shows_list_features(sqlite_repo):
    out = run("feast", "schema", str(sqlite_repo / "feature_store.yaml"), "user_features", "--prefix", "user")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "user_features (entity user_id: int64)"
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows == {
        "user_age": ["int32"], "user_score": ["float32"], "user_name": ["str"],
        "user_genres": ["int64", "list"], "user_found": ["bool"],
    }


def test_bad_view_and_missing_repo_are_one_error_line(sqlite_repo, tmp_path):
    assert_clean_error(run("feast", "schema", str(sqlite_repo), "no_such_view"), "no_such_view")
    assert_clean_error(run("feast", "schema", str(tmp_path / "nowhere"), "user_features"),
                       "nowhere", "feature_store.yaml")
