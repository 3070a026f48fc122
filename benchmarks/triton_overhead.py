"""What serving on Triton costs over running the graph in-process.

A small graph (funnel_testing.demo_ensemble: filter → unroll → score → top-k) is
run in-process, and served in executor mode and ensemble mode, over HTTP and gRPC, at
concurrency 1 and 8, with 1 and 64 rows per request, dynamic batching on and off.
Results: benchmarks/results/triton_overhead.{json,md}.

    python benchmarks/triton_overhead.py            # n=300 per cell
    python benchmarks/triton_overhead.py --n 100    # quicker
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import measure, write_results  # noqa: E402

from funnel_triton import TritonServer  # noqa: E402
from funnel_triton.client import make_client, table_to_inputs  # noqa: E402
from funnel_testing import demo_ensemble, demo_request  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="timed requests per cell")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--out", default=None, help="results directory (default benchmarks/results)")
    parser.add_argument("--smoke", action="store_true", help="seconds: n=5 per cell, results to a temp dir")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.warmup = 5, 2
    ens = demo_ensemble()
    requests = {b: demo_request(b, seed=b) for b in (1, 64)}
    rows = []
    for b, req in requests.items():
        for c in (1, 8):
            s = measure(lambda req=req: ens.transform(req), args.n, args.warmup, c)
            rows.append({"path": "in-process", "protocol": "-", "batching": "-", "rows": b, **s.to_dict()})
            print(rows[-1], flush=True)
    work = Path(tempfile.mkdtemp(prefix="funnel-bench-"))
    try:
        repo = work / "repo"
        repo.mkdir()
        for mode in ("executor", "ensemble"):
            for batching in (True, False):
                name = f"{mode}_{'db' if batching else 'nodb'}"
                ens.export(work / name, mode=mode, name=name, dynamic_batching=batching)
                for model in (work / name).iterdir():
                    if model.is_dir() and not (repo / model.name).exists():
                        shutil.copytree(model, repo / model.name)
        with TritonServer(repo, timeout=180) as server:
            for mode in ("executor", "ensemble"):
                for batching in (True, False):
                    name = f"{mode}_{'db' if batching else 'nodb'}"
                    for protocol in ("http", "grpc"):
                        url = server.http_url if protocol == "http" else server.grpc_url
                        for b, req in requests.items():
                            inputs = table_to_inputs(req, protocol)
                            for c in (1, 8):
                                local = threading.local()  # tritonclient.http (gevent) clients are per thread

                                def call(url=url, protocol=protocol, name=name, inputs=inputs, local=local):
                                    if not hasattr(local, "client"):
                                        local.client = make_client(url, protocol)
                                    local.client.infer(name, inputs)

                                s = measure(call, args.n, args.warmup, c)
                                rows.append({"path": mode, "protocol": protocol,
                                             "batching": "dynamic" if batching else "off", "rows": b, **s.to_dict()})
                                print(rows[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta = {"n": args.n, "warmup": args.warmup, "graph": repr(ens), "smoke": args.smoke}
    if args.smoke and args.out is None:
        with tempfile.TemporaryDirectory(prefix="triton-bench-smoke-") as out:
            path = write_results("triton_overhead", rows, meta, out=Path(out))
            print(f"wrote {path} (smoke)")
        return
    path = write_results("triton_overhead", rows, meta, out=Path(args.out) if args.out else None)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
