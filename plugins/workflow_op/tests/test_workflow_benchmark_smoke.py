"""benchmarks/workflow.py --smoke runs end to end (tiny sizes) and records every path it claims."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.triton
def test_workflow_benchmark_smoke(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "workflow.py"), "--smoke", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    data = json.loads((tmp_path / "workflow.json").read_text())
    assert data["meta"]["smoke"] is True
    paths = {(r["path"], r.get("concurrency")) for r in data["rows"]}
    for p in ("in-process array (TransformWorkflow)", "in-process dataframe (workflow.transform(df).compute())",
              "hand-written pandas floor", "offline fit+transform single-process"):
        assert any(p == q for q, _ in paths), p
    for protocol in ("http", "grpc"):
        for c in (1, 8):
            assert (f"served executor {protocol}", c) in paths
    assert any(q.startswith("offline fit+transform dask") for q, _ in paths)
