"""Every benchmark script runs end to end (``--smoke``: tiny sizes, seconds), so none rots.

Each runs as its own process, the way a reader runs it, on a fresh work directory, and
writes its results into the test's temporary directory (never benchmarks/results). The
assertions check that every path the script claims to measure produced a cell; timings
are never asserted (benchmarks measure, tests check).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def run(script: str, *args: str, timeout: float = 600) -> str:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, f"{script} --smoke failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout


@pytest.mark.triton
def test_multistage_smoke_on_a_fresh_workdir(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # the work directory tests/test_dask.py and the scaling smoke share (same sizes); this file
    # runs first, so in a full test session the script builds it from nothing
    work = tmp_path_factory.getbasetemp() / "multistage-120x300-e1"
    run("multistage.py", "--workdir", str(work), "--out", str(tmp_path / "ms"), "--variants", "executor,ensemble")
    data = json.loads((tmp_path / "ms.json").read_text())
    keys = {c["key"] for c in data["cells"]}
    for u in (1, 16, 64):
        for variant in ("floor", "in-process", "in-process+item-cache"):
            assert f"{variant}/-/u{u}/c1" in keys
        assert f"executor/http/u{u}/c1" in keys
    assert "executor/http/u1/c4" in keys
    served = next(c for c in data["cells"] if c["key"] == "executor/http/u1/c1")
    side = served["extra"]["server_side"]
    # Triton's statistics and the timed execute() reached the results
    for k in ("server_request_mean_ms", "compute_infer_mean_ms", "execute_mean_ms", "python_backend_ipc_ms"):
        assert k in side, side
    assert "served_minus_in_process_p50_ms" in served["extra"]
    cached = next(c for c in data["cells"] if c["key"] == "in-process+item-cache/-/u64/c1")
    assert 0.0 <= cached["extra"]["item_cache_hit_rate"] <= 1.0
    assert data["meta"]["smoke"] is True
    assert (tmp_path / "ms.md").read_text().startswith("# Multi-stage pipeline benchmark")


def test_feast_overhead_smoke(tmp_path: Path) -> None:
    run("feast_overhead.py", "--out", str(tmp_path))
    rows = json.loads((tmp_path / "feast_overhead.json").read_text())["rows"]
    cases = {(r["case"], r["path"]) for r in rows}
    assert ("items_100", "op_cached") in cases
    zipf = [r for r in rows if r["case"].startswith("zipf") and r["path"] == "op_cached"]
    assert {r["case"] for r in zipf} == {"zipf_items_100_cold", "zipf_items_100_steady"}
    assert all(0.0 <= r["hit_rate"] <= 1.0 and r["cache_size"] < r["catalogue"] for r in zipf)


def test_faiss_overhead_smoke(tmp_path: Path) -> None:
    run("faiss_overhead.py", "--out", str(tmp_path))
    rows = json.loads((tmp_path / "faiss_overhead.json").read_text())["rows"]
    assert {(r["kind"], r["path"]) for r in rows} >= {("flat", "direct"), ("hnsw", "ensemble")}


@pytest.mark.triton
def test_triton_overhead_smoke(tmp_path: Path) -> None:
    run("triton_overhead.py", "--out", str(tmp_path))
    rows = json.loads((tmp_path / "triton_overhead.json").read_text())["rows"]
    assert {(r["path"], r["protocol"]) for r in rows} >= {("in-process", "-"), ("executor", "grpc"), ("ensemble", "http")}


def test_readme_table_is_current() -> None:
    """README's performance section is what benchmarks/readme_table.py makes of the results files."""
    proc = subprocess.run([sys.executable, str(BENCH / "readme_table.py"), "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        import cupy  # noqa: PLC0415

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no driver, no cupy: no GPU
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _has_gpu(), reason="needs an NVIDIA GPU with cupy")
def test_triton_gpu_smoke(tmp_path: Path) -> None:
    run("triton_gpu.py", "--out", str(tmp_path))
    rows = json.loads((tmp_path / "triton_gpu.json").read_text())["rows"]
    assert {r["instance_kind"] for r in rows} == {"gpu", "cpu"}
