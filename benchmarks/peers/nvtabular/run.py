"""NVTabular 23.08 peer of benchmarks/workflow.py: the session workflow fitted with NVTabular on
the same generated clicks, timed in-process and served as Merlin's TransformWorkflow on the same
embedded Triton, from this (funnel) environment.

    .venv/bin/python benchmarks/peers/nvtabular/run.py            # results/workflow_nvtabular.{json,md}
    .venv/bin/python benchmarks/peers/nvtabular/run.py --smoke    # tiny, results to a temp dir

Needs ``.venv-merlin`` (``bash benchmarks/peers/merlin/setup.sh``). ``run_peer(clicks, request)``
returns the rows, for benchmarks/workflow.py to put next to funnel-workflow's cells in one run.
The data are ``funnel_workflow.testing.make_clicks(n_sessions=3000, seed=0, n_items=2000)`` and the
request its last 50 interactions by time — what benchmarks/workflow.py sends.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
VENV = ROOT / ".venv-merlin"
SCRIPT = Path(__file__).resolve().parent / "nvt_workflow.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

from _harness import write_results  # noqa: E402


def _pct(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "mean_ms": round(float(a.mean()), 3)}


def _sub(args: list[str], what: str, timeout: float) -> None:
    env = {**os.environ, "PYTHONNOUSERSITE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run([str(VENV / "bin" / "python"), str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"NVTabular peer failed to {what} (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def _inputs(request: Any, protocol: str) -> list[Any]:
    mod = __import__(f"tritonclient.{protocol}", fromlist=["InferInput"])
    out = []
    for name in request.columns:
        arr = np.ascontiguousarray(request[name].to_numpy().astype(np.int64))
        inp = mod.InferInput(name, list(arr.shape), "INT64")
        inp.set_data_from_numpy(arr)
        out.append(inp)
    return out


def run_peer(clicks: Any, request: Any, n: int = 200, warmup: int = 10, concurrency: int = 8) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fit, export, time in-process (in .venv-merlin) and served (here); returns (rows, info)."""
    from funnel_triton import TritonServer  # noqa: PLC0415

    if not (VENV / "bin" / "python").is_file():
        raise SystemExit(f"the NVTabular peer needs {VENV}: run `bash benchmarks/peers/merlin/setup.sh` (5-15 min)")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nvt-peer-") as tmp:
        out = Path(tmp)
        clicks.to_parquet(out / "clicks.parquet", index=False)
        request.to_parquet(out / "request.parquet", index=False)
        _sub(["build", "--clicks", str(out / "clicks.parquet"), "--out", str(out / "o")], "fit and export", 1200)
        info = json.loads((out / "o" / "build.json").read_text())
        _sub(["bench", "--out", str(out / "o"), "--request", str(out / "request.parquet"), "--n", str(n),
              "--warmup", str(warmup)], "run in-process", 1800)
        local = json.loads((out / "o" / "inprocess.json").read_text())
        info["sessions_out_in_process"] = local["sessions_out"]
        for path, s in local["samples"].items():
            rows.append({"system": "NVTabular 23.08", "path": f"in-process: {path}", "protocol": "-", "concurrency": 1,
                         "n": len(s), **_pct(s), "requests_per_s": round(len(s) / sum(s), 2)})
        env = {"PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
        t0 = time.perf_counter()
        with TritonServer(out / "o" / "repo", timeout=600, env=env) as server:
            info["server_load_s"] = round(time.perf_counter() - t0, 1)
            model = info["entry_model"]
            for protocol in ("http", "grpc"):
                inputs = _inputs(request, protocol)
                client = server.client(protocol)
                for _ in range(warmup):
                    client.infer(model, inputs)
                lat = []
                for _ in range(n):
                    t = time.perf_counter()
                    client.infer(model, inputs)
                    lat.append(time.perf_counter() - t)
                rows.append({"system": "NVTabular 23.08", "path": "served: Merlin TransformWorkflow (executor + workflow model)",
                             "protocol": protocol, "concurrency": 1, "n": n, **_pct(lat),
                             "requests_per_s": round(n / sum(lat), 2)})
                print(rows[-1], flush=True)
            # closed loop, one client per thread
            inputs = _inputs(request, "http")
            lat_c: list[float] = []
            lock = threading.Lock()
            barrier = threading.Barrier(concurrency + 1)

            def loop() -> None:
                client = server.client("http")
                client.infer(model, inputs)
                barrier.wait()
                mine = []
                for _ in range(max(1, n // concurrency)):
                    t = time.perf_counter()
                    client.infer(model, inputs)
                    mine.append(time.perf_counter() - t)
                with lock:
                    lat_c.extend(mine)

            threads = [threading.Thread(target=loop) for _ in range(concurrency)]
            for t in threads:
                t.start()
            barrier.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            rows.append({"system": "NVTabular 23.08", "path": "served: Merlin TransformWorkflow (executor + workflow model)",
                         "protocol": "http", "concurrency": concurrency, "n": len(lat_c), **_pct(lat_c),
                         "requests_per_s": round(len(lat_c) / wall, 2)})
            print(rows[-1], flush=True)
    return rows, info


def main(argv: list[str] | None = None) -> int:
    from funnel_workflow.testing import make_clicks  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="timed requests per cell")
    parser.add_argument("--out", default=None, help="results directory (default benchmarks/results)")
    parser.add_argument("--smoke", action="store_true", help="tiny data, a few requests, results to a temp dir")
    args = parser.parse_args(argv)
    sessions = 300 if args.smoke else 3000
    n = 5 if args.smoke else args.n
    clicks = make_clicks(n_sessions=sessions, seed=0, n_items=2000)
    request = clicks.sort_values("timestamp", kind="stable").iloc[-50:].reset_index(drop=True)
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows, info = run_peer(clicks, request, n=n, warmup=2 if args.smoke else 10, concurrency=4 if args.smoke else 8)
    meta = {"load_avg_before": load_before, "smoke": args.smoke, "clicks": len(clicks), "request_rows": len(request),
            "data": f"make_clicks(n_sessions={sessions}, seed=0, n_items=2000), request = last 50 by timestamp", **info}
    if args.smoke and args.out is None:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"wrote {write_results('workflow_nvtabular', rows, meta, out=Path(tmp))} (smoke)")
        return 0
    print(f"wrote {write_results('workflow_nvtabular', rows, meta, out=Path(args.out) if args.out else None)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
