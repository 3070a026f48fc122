"""benchmarks/torch_multistage.py runs end to end (``--smoke``), on the CPU everywhere and on CUDA
where there is a GPU, so the torch multistage benchmark cannot rot between GPU runs.

Like tests/test_benchmarks_smoke.py: the script runs as its own process, results go to the
test's temporary directory, and only the presence of every cell and the served = in-process
checks are asserted, never timings.
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
SCRIPT = ROOT / "benchmarks" / "torch_multistage.py"

# the CPU cells need these; tools/venv.sh installs them (CI included), so a missing one fails here
# instead of skipping — only the CUDA cells skip, and only for want of a GPU
import faiss  # noqa: E402, F401
import funnel_faiss  # noqa: E402, F401
import funnel_sampling  # noqa: E402, F401
import funnel_torch  # noqa: E402, F401
import torch  # noqa: E402, F401


def run(out: Path, *args: str) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"torch_multistage.py --smoke failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    name = "torch_multistage_gpu" if "--gpu" in args else "torch_multistage"
    assert (out / f"{name}.md").read_text().startswith("# A torch multistage pipeline")
    return json.loads((out / f"{name}.json").read_text())


def cells(data: dict) -> set[tuple[str, int, str]]:
    return {(r["graph"], r["users"], r["path"]) for r in data["rows"]}


def test_in_process_cpu_smoke(tmp_path: Path) -> None:
    data = run(tmp_path, "--no-served", "--threads", "1")
    assert cells(data) == {(g, u, "in-process/cpu") for g in ("full", "rank") for u in (1, 64)}
    meta = data["meta"]
    assert meta["smoke"] is True and meta["gpu"] is None
    # the models are trained and evaluated in the run; the finding on faiss-gpu is in every results file
    assert {"retrieval_recall_at_100", "popularity_recall_at_100", "ranker_auc"} <= set(meta["quality"])
    assert "faiss-gpu-cu12" in meta["faiss_gpu"]


@pytest.mark.triton
def test_served_kind_cpu_equals_in_process(tmp_path: Path) -> None:
    data = run(tmp_path, "--threads", "1")
    assert {(g, u, "served/KIND_CPU") for g in ("full", "rank") for u in (1, 64)} <= cells(data)
    served = [r for r in data["rows"] if r["path"].startswith("served/")]
    assert served and all(r["equal_to_in_process"] is True for r in served)
    assert all(c["equal"] for c in data["meta"]["checks"].values()), data["meta"]["checks"]


def _has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        import cupy  # noqa: PLC0415
        import torch  # noqa: PLC0415

        return torch.cuda.is_available() and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no driver, no cupy: no GPU
        return False


@pytest.mark.gpu
@pytest.mark.triton
@pytest.mark.skipif(not _has_gpu(), reason="needs an NVIDIA GPU with torch CUDA and cupy")
def test_gpu_cells_smoke(tmp_path: Path) -> None:
    data = run(tmp_path, "--gpu")
    want = {(g, u, p) for g in ("full", "rank") for u in (1, 64)
            for p in ("in-process/cpu", "in-process/cuda", "served/KIND_CPU", "served/KIND_GPU")}
    assert want == cells(data)
    served = [r for r in data["rows"] if r["path"].startswith("served/")]
    assert all(r["equal_to_in_process"] is True for r in served)
    assert data["meta"]["gpu"]


def test_gpu_flag_without_a_gpu_says_so(tmp_path: Path) -> None:
    if _has_gpu():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--gpu", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "sees no CUDA device" in proc.stderr and "without --gpu" in proc.stderr
