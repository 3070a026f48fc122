"""Scaling on one machine: requests/s of the multi-stage executor model with 1, 2 and 4 Triton
model instances (``instance_group { count: N }``).

The demo pipeline (examples/multistage: Feast user lookup → TF query tower → FAISS top-100 →
seen filter → Feast item lookup → unroll → TF ranker → SoftmaxSampling top-10) is exported in
executor mode with dynamic batching, once per instance count, and served by the embedded
Triton. A closed loop of C client threads (one tritonclient each, HTTP) sends requests of U
users; every cell reports p50/p95/p99 latency, requests/s and users/s, plus the speed-up over
one instance. All servers stay up and cells are measured round-robin across instance counts
(``--rounds``, median reported), so load drift hits every count alike. Each instance is its own Python-backend process, so on a machine with k cores
more than k instances cannot add compute; the load average before and after each cell is
recorded because other work on the machine changes the numbers.

    .venv/bin/python benchmarks/scaling.py            # instances 1,2,4 (~4 min on 2 cores)
    .venv/bin/python benchmarks/scaling.py --smoke    # tiny data and counts, results in a temp dir

Writes ``benchmarks/results/scaling.json`` / ``.md`` (``--out STEM`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine, measure  # noqa: E402


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _versions() -> dict[str, str]:
    import importlib.metadata as md  # noqa: PLC0415

    out = {}
    for dist in ("funnel", "numpy", "tensorflow-cpu", "feast", "faiss-cpu", "tritonclient", "nvidia-pytriton"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from funnel_triton import TritonServer  # noqa: PLC0415
    from funnel.table import Table  # noqa: PLC0415

    from examples.multistage.pipeline import build_ensemble  # noqa: PLC0415
    from examples.multistage.prepare import load_split, prepare  # noqa: PLC0415

    # smoke sizes = tests/test_dask.py's, so a test session prepares the data and models once
    sizes = dict(num_users=120, num_items=300, epochs=1) if args.smoke else dict(num_users=None, num_items=None, epochs=8)
    art = prepare(args.workdir, log=lambda m: print(m, flush=True), **sizes)
    split = load_split(art.num_users, art.num_items)
    pool = np.unique(split.train.user_id.to_numpy()).astype(np.int64)
    ens = build_ensemble(art, seed=0)
    rng = np.random.default_rng(0)
    cells = []
    meta = {**machine(), "cores": os.cpu_count(), "versions": _versions(), "smoke": bool(args.smoke),
            "instances": args.instances, "load_avg_start": _load(),
            "pipeline": "examples/multistage executor model (Feast, TF, FAISS, filter, TF ranker, SoftmaxSampling)"}
    # every server stays up for the whole run and the cells are measured round-robin across
    # instance counts (``--rounds`` times), so load from other work on the machine drifts into
    # every count alike; a cell's figure is the median over its rounds
    from contextlib import ExitStack  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="funnel-scaling-") as tmp, ExitStack() as stack:
        servers = {}
        for count in args.instances:
            repo = ens.export(Path(tmp) / f"repo{count}", mode="executor", instance_count=count, overwrite=True)
            t0 = time.perf_counter()
            servers[count] = (stack.enter_context(TritonServer(repo, timeout=900)), time.perf_counter() - t0)
            print(f"[scaling] {count} instance(s) ready in {servers[count][1]:.1f} s", flush=True)
        requests = {users: [Table({"user_id": rng.choice(pool, size=users, replace=False)}) for _ in range(64)]
                    for users, _ in args.cells}
        rounds: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
        for r in range(args.rounds):
            for users, conc in args.cells:
                for count in args.instances:
                    server = servers[count][0]
                    it = iter(range(10**9))

                    def call(server=server, reqs=requests[users], it=it) -> Any:
                        return server.infer(reqs[next(it) % len(reqs)])

                    before = _load()
                    stats = measure(call, n=max(8, args.n // max(1, users // 4)), warmup=args.warmup if r == 0 else 4,
                                    concurrency=conc)
                    rounds.setdefault((count, users, conc), []).append(
                        {**stats.to_dict(), "load_before": before, "load_after": _load()})
                    print(f"[scaling] round {r + 1}/{args.rounds} instances={count} users={users} conc={conc}: "
                          f"{stats.throughput:.1f} req/s, p50 {stats.p50_ms:.1f} ms", flush=True)
        for (count, users, conc), runs in rounds.items():
            med = {k: float(np.median([x[k] for x in runs])) for k in ("p50_ms", "p95_ms", "p99_ms", "throughput")}
            cells.append({
                "instances": count, "users_per_request": users, "concurrency": conc,
                "n": int(sum(x["n"] for x in runs)), "rounds": len(runs),
                **{k: round(v, 2) for k, v in med.items() if k != "throughput"},
                "requests_per_s": round(med["throughput"], 1), "users_per_s": round(med["throughput"] * users, 1),
                "requests_per_s_rounds": [round(x["throughput"], 1) for x in runs],
                "load_avg_before": runs[0]["load_before"], "load_avg_after": runs[-1]["load_after"],
                "ready_s": round(servers[count][1], 1),
            })
    base = {(c["users_per_request"], c["concurrency"]): c["requests_per_s"] for c in cells if c["instances"] == args.instances[0]}
    for c in cells:
        c["speedup_vs_first"] = round(c["requests_per_s"] / base[(c["users_per_request"], c["concurrency"])], 2)
    meta["load_avg_end"] = _load()
    return {"meta": meta, "cells": cells}


def write(result: dict[str, Any], stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    meta = result["meta"]
    lines = [
        "# Scaling on one machine: executor model, Triton instance_group count",
        "",
        f"{meta['cores']} CPUs, {meta['platform']}, Python {meta['python']}, {meta['date']}"
        + (" (--smoke: tiny data, not a measurement)" if meta["smoke"] else ""),
        f"load average (1/5/15 min) at start {meta['load_avg_start']}, at end {meta['load_avg_end']}. "
        f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}.",
        "",
        "| instances | users/request | concurrency | n | p50 ms | p95 ms | p99 ms | requests/s (median; per round) | users/s | × 1 instance | load avg first → last round |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in result["cells"]:
        lines.append(
            f"| {c['instances']} | {c['users_per_request']} | {c['concurrency']} | {c['n']} | {c['p50_ms']:.1f} | "
            f"{c['p95_ms']:.1f} | {c['p99_ms']:.1f} | {c['requests_per_s']} ({', '.join(map(str, c['requests_per_s_rounds']))}) | {c['users_per_s']} | "
            f"{c['speedup_vs_first']} | {c['load_avg_before'][0]} → {c['load_avg_after'][0]} |"
        )
    notes = stem.with_name(stem.name + ".notes.md")
    if notes.is_file():
        lines += ["", notes.read_text().rstrip()]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _cells(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        users, _, conc = part.partition("x")
        out.append((int(users), int(conc)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=None,
                        help="examples/multistage work directory (models, feature repo, index; reused when complete); "
                        "default $FUNNEL_BENCH_WORKDIR or <tmp>/funnel-multistage (-smoke with --smoke)")
    parser.add_argument("--instances", default="1,2,4", help="instance_group counts to measure")
    parser.add_argument("--cells", default="1x8,16x4", help="USERSxCONCURRENCY pairs (users per request × client threads)")
    parser.add_argument("-n", type=int, default=300, help="requests per cell and round (fewer for bigger requests)")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds over the instance counts (median)")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="tiny data and counts, results in a temp dir")
    parser.add_argument("--out", default=None, help="results stem (default benchmarks/results/scaling)")
    args = parser.parse_args(argv)
    args.instances = [int(x) for x in args.instances.split(",")]
    args.cells = _cells(args.cells)
    if args.workdir is None:
        default = os.environ.get("FUNNEL_BENCH_WORKDIR", str(Path(tempfile.gettempdir()) / "funnel-multistage"))
        args.workdir = default + ("-smoke" if args.smoke else "")
    if args.smoke:
        args.n, args.warmup, args.rounds = 16, 4, 1
        if args.out is None:
            args.out = str(Path(tempfile.mkdtemp(prefix="funnel-scaling-smoke-")) / "scaling")
    stem = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / "scaling"
    result = run(args)
    write(result, stem)
    print(f"[scaling] results: {stem.with_suffix('.md')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
