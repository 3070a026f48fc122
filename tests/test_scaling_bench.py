"""benchmarks/scaling.py runs end to end (``--smoke``) as its own process and records a cell per
instance count; timings are never asserted (benchmarks measure, tests check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.triton
def test_scaling_smoke(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # the same prepared data and models as tests/test_dask.py (built once per test session)
    work = tmp_path_factory.getbasetemp() / "multistage-120x300-e1"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--smoke", "--workdir", str(work),
         "--instances", "1,2", "--cells", "1x2", "--out", str(tmp_path / "scaling")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    data = json.loads((tmp_path / "scaling.json").read_text())
    assert data["meta"]["smoke"] is True
    cells = {(c["instances"], c["users_per_request"], c["concurrency"]): c for c in data["cells"]}
    assert set(cells) == {(1, 1, 2), (2, 1, 2)}
    for c in cells.values():
        assert c["n"] == 16 and c["requests_per_s"] > 0 and c["p50_ms"] <= c["p99_ms"]
    assert cells[(1, 1, 2)]["speedup_vs_first"] == 1.0
    assert "| instances |" in (tmp_path / "scaling.md").read_text()
