"""QueryFeast serialization: save/load round trip, repo path override, no credentials, registry."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from funnel import ColumnSchema, Ensemble, Ragged, Schema, Table
from funnel.errors import ArtifactError
from funnel.registry import get_operator
from funnel_feast import REPO_PATH_ENV, QueryFeast

REQUEST = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("candidate_ids", "int64", dims=(None,))])


def make_ensemble(repo: Path) -> Ensemble:
    user = ["user_id"] >> QueryFeast.from_feature_view(repo, "user_features", "user_id", output_prefix="user")
    items = ["candidate_ids"] >> QueryFeast.from_feature_view(
        repo, "item_features", "candidate_ids", output_prefix="item", include_id=True, cache_size=100
    )
    return Ensemble(user + items, REQUEST)


def request_table() -> Table:
    return Table(
        {
            "user_id": np.array([1, 7, 404], dtype=np.int64),
            "candidate_ids": Ragged.from_lists([[1, 2], [3, 404, 5], []], dtype="int64"),
        }
    )


def test_save_load_round_trip(sqlite_repo, tmp_path):
    ens = make_ensemble(sqlite_repo)
    expected = ens.transform(request_table())
    saved = ens.save(tmp_path / "saved")
    loaded = Ensemble.load(saved)
    assert loaded.output_schema == ens.output_schema
    assert loaded.transform(request_table()) == expected
    text = (saved / "funnel-graph.json").read_text()
    assert str(sqlite_repo) in text and '"type": "feast.QueryFeast"' in text


def test_schema_from_config_needs_no_store(sqlite_repo):
    op = QueryFeast.from_feature_view(sqlite_repo, "user_features", "user_id", output_prefix="user")
    config = json.loads(json.dumps(op.to_config()))
    config["repo_path"] = "/nonexistent/feature/repo"
    restored = QueryFeast.from_config(config)
    assert restored.compute_output_schema(REQUEST) == op.compute_output_schema(REQUEST)
    assert restored.to_config() == config


def test_export_holds_no_store_settings(redis_repo, redis_server, tmp_path):
    ens = Ensemble(
        ["candidate_ids"] >> QueryFeast.from_feature_view(redis_repo, "item_features", "candidate_ids"),
        REQUEST,
    )
    saved = ens.save(tmp_path / "saved")
    every_file = "".join(p.read_text() for p in saved.rglob("*") if p.is_file())
    assert redis_server not in every_file and "connection_string" not in every_file


def test_moved_repo_fails_clearly_then_env_var_points_to_it(sqlite_repo, tmp_path, monkeypatch):
    repo = shutil.copytree(sqlite_repo, tmp_path / "repo")
    ens = make_ensemble(repo)
    expected = ens.transform(request_table())
    saved = ens.save(tmp_path / "saved")
    moved = repo.rename(tmp_path / "moved")
    monkeypatch.delenv(REPO_PATH_ENV, raising=False)
    with pytest.raises(ArtifactError, match=REPO_PATH_ENV):
        Ensemble.load(saved)
    monkeypatch.setenv(REPO_PATH_ENV, str(moved))
    assert Ensemble.load(saved).transform(request_table()) == expected
    monkeypatch.setenv(REPO_PATH_ENV, str(moved / "feature_store.yaml"))  # the yaml file works too
    assert Ensemble.load(saved).transform(request_table()) == expected


def test_per_view_env_var_wins(sqlite_repo, redis_repo, monkeypatch):
    op = QueryFeast.from_feature_view(sqlite_repo, "item_features", "candidate_ids")
    restored = QueryFeast.from_config(op.to_config())
    monkeypatch.setenv(REPO_PATH_ENV, "/nonexistent")
    monkeypatch.setenv(f"{REPO_PATH_ENV}__ITEM_FEATURES", str(redis_repo))
    restored.load_artifacts(Path("/unused"))
    assert restored.store.config.online_store.type == "redis"
    assert restored.resolved_repo_path() == (str(redis_repo), f"${REPO_PATH_ENV}__ITEM_FEATURES")
    ids = Ragged.from_lists([[3, 4]], dtype="int64")
    assert restored.transform(Table({"candidate_ids": ids})) == op.transform(Table({"candidate_ids": ids}))


def test_registered_and_listed_by_cli():
    assert get_operator("feast.QueryFeast") is QueryFeast
    exe = Path(sys.executable).with_name("funnel")
    result = subprocess.run(
        [str(exe), "plugins", "--json"], capture_output=True, text=True, timeout=120, check=True
    )
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert listed["feast"]["distribution"] == "funnel-feast"
    assert "feast.QueryFeast" in listed["feast"]["operators"]
