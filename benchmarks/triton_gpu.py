"""KIND_GPU vs KIND_CPU executor model on a GPU machine: correctness and latency.

Run on a machine with an NVIDIA GPU, cupy and the embedded Triton (see benchmarks/README.md):

    python benchmarks/triton_gpu.py --out benchmarks/results

It exports core's demo graph (funnel_testing) twice — instance_kind="gpu" (request
tables become cupy arrays inside the model, DLPack in and out) and "cpu" — checks that the
served results equal Ensemble.transform for 1, 7 and 64 rows, then times sequential HTTP
requests. Writes triton_gpu.json / triton_gpu.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import measure  # noqa: E402
from funnel_triton import TritonServer  # noqa: E402
from funnel_triton.client import table_to_inputs  # noqa: E402
from funnel_testing import demo_ensemble, demo_request  # noqa: E402


def gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--kinds", default="gpu,cpu", help="instance kinds to compare")
    parser.add_argument("--smoke", action="store_true", help="seconds: n=5, results to a temp dir unless --out is given")
    args = parser.parse_args(argv)
    smoke_tmp = None
    if args.smoke:
        args.n = 5
        if "--out" not in (argv if argv is not None else sys.argv[1:]):
            smoke_tmp = tempfile.TemporaryDirectory(prefix="triton-gpu-smoke-")
            args.out = smoke_tmp.name
    ens = demo_ensemble()
    rows_out = []
    checks = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            repo = ens.export(Path(tmp) / kind, instance_kind=kind)
            started = time.perf_counter()
            with TritonServer(repo, timeout=300) as server:
                load_s = time.perf_counter() - started
                for rows in (1, 7, 64):
                    req = demo_request(rows, seed=rows)
                    same = server.infer(req) == ens.transform(req)
                    checks.append({"kind": kind, "rows": rows, "served_equals_transform": bool(same)})
                    assert same, f"{kind} rows={rows}: served result differs from transform()"
                for rows in (1, 64):
                    req = demo_request(rows, seed=1)
                    inputs = table_to_inputs(req, protocol="http", schema=ens.input_schema)
                    stats = measure(lambda inputs=inputs: server.client("http").infer("funnel", inputs), n=args.n,
                                    warmup=3 if args.smoke else 30)
                    rows_out.append({"instance_kind": kind, "rows_per_request": rows, "server_start_s": round(load_s, 2),
                                     **stats.to_dict()})
                    print(rows_out[-1], flush=True)
    meta = {"gpu": gpu_name(), "python": platform.python_version(), "numpy": np.__version__,
            "date": time.strftime("%Y-%m-%d"), "checks": checks}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "triton_gpu.json").write_text(json.dumps({"meta": meta, "rows": rows_out}, indent=2) + "\n")
    lines = [
        "# KIND_GPU executor model on a GPU machine",
        "",
        f"{meta['date']}, {meta['gpu']}, Python {meta['python']}, numpy {meta['numpy']}, embedded Triton 2.51 "
        "(nvidia-pytriton 0.7.0, 3.12 stub). Sequential HTTP requests, client and server on the same host.",
        "",
        "Served equals `Ensemble.transform()`: " + ", ".join(f"{c['kind']}×{c['rows']} rows ✓" for c in checks),
        "",
        "| instance kind | rows/request | p50 ms | p95 ms | p99 ms | req/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows_out:
        lines.append(f"| {r['instance_kind']} | {r['rows_per_request']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['throughput']} |")
    (out / "triton_gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if smoke_tmp is not None:
        smoke_tmp.cleanup()


if __name__ == "__main__":
    main()
