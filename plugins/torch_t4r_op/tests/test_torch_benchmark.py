"""benchmarks/torch_overhead.py runs end to end (--smoke: every path, tiny n); timings are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_torch_overhead_smoke(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "torch_overhead.py"), "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((tmp_path / "torch_overhead.json").read_text())["rows"]
    cells = {(r["B"], r["output"], r["path"]) for r in rows if r["case"] == "sessions×20"}
    for b in (1, 16, 64):
        for out in ("logits", "top20"):
            for path in ("direct", "op", "ensemble"):
                assert (b, out, path) in cells
    assert {r["path"] for r in rows if r["case"] == "rank 64×100"} == {"direct", "ensemble"}
    assert (tmp_path / "torch_overhead.md").is_file()
