import json
import subprocess
import sys
from pathlib import Path


from funnel import ColumnSchema, ColumnSelector, Ensemble, Schema
from funnel.ops import UnrollFeatures

FUNNEL = str(Path(sys.executable).parent / "funnel")


def run(*args, **env):
    import os

    return subprocess.run([FUNNEL, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def test_plugins_json_lists_builtins():
    proc = run("plugins", "--json", FUNNEL_LOAD_PLUGINS="")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data[0]["name"] == "funnel"
    assert set(data[0]["operators"]) == {"funnel.UnrollFeatures", "funnel.FilterCandidates", "funnel.Cast", "funnel.AsType",
                                         "funnel.Select", "funnel.Rename", "funnel.KnownIds", "funnel.Fallback"}


def test_help_and_version():
    assert "plugins" in run("--help").stdout
    assert "funnel" in run("--version").stdout


def test_graph_command_draws_a_saved_graph(tmp_path):
    req = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("cands", "int64", dims=(None,))])
    ens = Ensemble(["cands"] >> UnrollFeatures("cands", ColumnSelector(["user_id"])), req)
    ens.save(tmp_path / "g")
    proc = run("graph", str(tmp_path / "g"), "-o", str(tmp_path / "g.svg"))
    assert proc.returncode == 0, proc.stderr
    svg = (tmp_path / "g.svg").read_text()
    assert "<svg" in svg and "funnel.UnrollFeatures" in svg
    dot = ens.to_dot()
    assert "request ->" in dot and "unroll_cols" in dot
    ens.render(tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text() == dot
    (tmp_path / "empty").mkdir()
    bad = run("graph", str(tmp_path / "empty"))
    assert bad.returncode == 1 and "Error: no funnel-graph.json" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_graph_command_finds_the_graph_in_a_repository_not_deeper(tmp_path):
    req = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("cands", "int64", dims=(None,))])
    ens = Ensemble(["cands"] >> UnrollFeatures("cands", ColumnSelector(["user_id"])), req)
    ens.save(tmp_path / "repo" / "funnel" / "1")
    assert run("graph", str(tmp_path / "repo"), "-o", str(tmp_path / "a.svg")).returncode == 0
    ens.save(tmp_path / "deep" / "a" / "b" / "c")
    proc = run("graph", str(tmp_path / "deep"))
    assert proc.returncode == 1 and "no funnel-graph.json" in proc.stderr


def test_a_plugin_command_without_its_plugin_names_the_distribution():
    proc = run("score", "graph", "src", "out", FUNNEL_LOAD_PLUGINS="")
    assert proc.returncode == 2
    assert "'funnel score' is a command of the plugin funnel-scale" in proc.stderr and "pip install funnel-scale" in proc.stderr
    serve = run("serve", "repo", FUNNEL_LOAD_PLUGINS="")  # the launcher is funnel-triton's
    assert serve.returncode == 2 and "pip install funnel-triton" in serve.stderr, serve.stderr
    assert "No such command 'nope'" in run("nope", FUNNEL_LOAD_PLUGINS="").stderr  # unknown commands stay click's
