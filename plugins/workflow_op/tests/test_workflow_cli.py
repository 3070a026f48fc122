"""``funnel workflow info`` / ``funnel workflow transform``, run as the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import workflow_session_etl as session_etl

FUNNEL = Path(sys.executable).parent / "funnel"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FUNNEL), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def saved(clicks, tmp_path_factory):
    workflow, sessions = session_etl.build(clicks)
    return workflow.save(tmp_path_factory.mktemp("cli") / "workflow_etl"), sessions


def test_plugins_lists_workflow_ops_and_command():
    proc = run("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    (info,) = [p for p in json.loads(proc.stdout) if p["name"] == "workflow"]
    assert {"workflow.Categorify", "workflow.Groupby", "workflow.TransformWorkflow"} <= set(info["operators"])
    assert "register_commands" in info["hooks"]
    assert "workflow" in run("--help").stdout


def test_info_describes_ops_schema_and_stats(saved):
    path, _ = saved
    proc = run("workflow", "info", str(path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Categorify (workflow.Categorify)" in out and "[offline-only, code]" in out  # the Filter
    assert "ItemRecency" in out and "[code]" in out
    assert "item_id-list_seq: int64 list" in out and '"cardinality"' in out
    assert "mean=" in out  # Normalize's statistics
    data = json.loads(run("workflow", "info", str(path), "--json").stdout)
    assert any(op["type"] == "workflow.Groupby" for op in data["operators"])


def test_transform_needs_trust_then_writes_parquet(saved, clicks, tmp_path):
    path, sessions = saved
    src = tmp_path / "clicks.parquet"
    clicks.to_parquet(src)
    refused = run("workflow", "transform", str(path), str(src), str(tmp_path / "out"))
    assert refused.returncode != 0 and "pass --trust-code" in refused.stderr
    assert "trust_code=True" in refused.stderr and "FUNNEL_TRUST_CODE=1" in refused.stderr
    proc = run("workflow", "transform", str(path), str(src), str(tmp_path / "out"), "--trust-code")
    assert proc.returncode == 0, proc.stderr
    out = pd.concat([pd.read_parquet(f) for f in sorted((tmp_path / "out").glob("*.parquet"))])
    assert out["session_id"].tolist() == sessions["session_id"].tolist()
    assert [list(v) for v in out["item_id-list_seq"]] == [list(v) for v in sessions["item_id-list_seq"]]


def test_errors_are_one_line(tmp_path):
    proc = run("workflow", "info", str(tmp_path / "nope"))
    assert proc.returncode != 0 and "not a saved funnel workflow directory" in proc.stderr
    assert "Traceback" not in proc.stderr
