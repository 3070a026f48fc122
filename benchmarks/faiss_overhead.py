"""QueryFaiss through funnel vs a direct ``index.search`` call: the framework's overhead.

Same index, same batch, same run: for each (index kind, size, batch) the three paths are
timed round-robin (one call of each per iteration, so drift hits all alike):

- ``direct``:   ``index.search(queries, topk)``
- ``op``:       ``QueryFaiss.transform(Table)``      (the operator alone)
- ``ensemble``: ``Ensemble.transform(Table)``        (graph executor + request validation)

Prints and records p50/p95/p99 latency (ms), throughput (queries/s) and the p50 ratio to
the direct call. Results go to ``benchmarks/results/faiss_overhead.{md,json}``.

    python benchmarks/faiss_overhead.py                          # flat+hnsw, 100k and 1M
    python benchmarks/faiss_overhead.py --sizes 100000 --kinds flat
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from funnel import ColumnSchema, Ensemble, Schema, Table
from funnel_faiss import QueryFaiss, build_index

RESULTS = Path(__file__).parent / "results"
DIM = 64


def embeddings(n: int, seed: int) -> np.ndarray:
    """Clustered unit vectors (n, 64) around 1000 fixed centres (items and queries alike)."""
    centres = np.random.default_rng(0).standard_normal((1000, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for lo in range(0, n, 200_000):
        hi = min(n, lo + 200_000)
        x = centres[rng.integers(0, len(centres), hi - lo)] + 0.5 * rng.standard_normal((hi - lo, DIM), dtype=np.float32)
        out[lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def time_paths(paths: dict[str, Callable[[], Any]], iters: int, warmup: int) -> dict[str, list[float]]:
    """Round-robin timing: each iteration calls every path once."""
    for _ in range(warmup):
        for fn in paths.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in paths}
    gc.collect()
    gc.disable()
    try:
        for _ in range(iters):
            for name, fn in paths.items():
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return samples


def run_cell(index: faiss.Index, kind: str, n: int, batch: int, topk: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    queries = embeddings(batch, seed=1000 + batch)
    op = QueryFaiss(index, topk=topk)
    ens = Ensemble(["query"] >> QueryFaiss(index, topk=topk), Schema([ColumnSchema("query", "float32", dims=(DIM,))]))
    table = Table({"query": queries})
    # same answers on every path before timing
    _, direct_ids = index.search(queries, topk)
    assert op.transform(table)["candidate_ids"].to_lists() == direct_ids.tolist()
    assert ens.transform(table)["candidate_ids"].to_lists() == direct_ids.tolist()
    paths = {
        "direct": lambda: index.search(queries, topk),
        "op": lambda: op.transform(table),
        "ensemble": lambda: ens.transform(table),
    }
    t0 = time.perf_counter()
    for _ in range(5):
        index.search(queries, topk)
    per_call = (time.perf_counter() - t0) / 5
    iters = int(max(args.min_iters, min(args.iters, args.budget_s / (3 * per_call))))
    samples = time_paths(paths, iters=iters, warmup=args.warmup)
    base = percentiles(samples["direct"])
    rows = []
    for name, s in samples.items():
        stats = percentiles(s)
        rows.append({
            "kind": kind, "items": n, "batch": batch, "topk": topk, "path": name, "iters": iters, **stats,
            "queries_per_s": batch / (stats["mean_ms"] / 1e3),
            "p50_ratio_vs_direct": stats["p50_ms"] / base["p50_ms"],
            "p50_overhead_ms": stats["p50_ms"] - base["p50_ms"],
        })
        print(f"{kind:5s} {n:>8d} B={batch:<3d} {name:9s} p50 {stats['p50_ms']:8.3f}  p95 {stats['p95_ms']:8.3f}  "
              f"p99 {stats['p99_ms']:8.3f} ms  {rows[-1]['queries_per_s']:10.0f} q/s  "
              f"x{rows[-1]['p50_ratio_vs_direct']:.3f} (+{rows[-1]['p50_overhead_ms'] * 1e3:.0f} µs)", flush=True)
    return rows


def write_results(rows: list[dict[str, Any]], meta: dict[str, Any], out: Path = RESULTS) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "faiss_overhead.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        "# QueryFaiss overhead vs direct `index.search`",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}; faiss {meta['faiss']} ({meta['faiss_threads']} OpenMP thread(s) while timing), numpy {meta['numpy']}, "
        f"Python {meta['python']}  ",
        f"Data: d={DIM} clustered unit vectors, inner product, top-{meta['topk']}; HNSW M={meta['hnsw_m']} "
        f"efConstruction={meta['ef_construction']} efSearch={meta['ef_search']}.  ",
        "Paths timed round-robin in the same run on the same index and batch; latency per call in ms, "
        "throughput = queries (rows) per second of one sequential caller; ratio = p50 / direct p50.",
        "",
        f"Load average when written: {', '.join(f'{x:.1f}' for x in meta['load_average'])} (shared machine).",
        "",
        "Build times: " + ", ".join(f"{k} {v:.1f} s" for k, v in meta["build_s"].items()),
        "",
        "| index | items | batch | path | p50 | p95 | p99 | queries/s | p50 ratio | p50 overhead (µs) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['kind']} | {r['items']:,} | {r['batch']} | {r['path']} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} | "
            f"{r['p99_ms']:.3f} | {r['queries_per_s']:,.0f} | {r['p50_ratio_vs_direct']:.3f} | "
            f"{r['p50_overhead_ms'] * 1e3:.0f} |"
        )
    (out / "faiss_overhead.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated item counts")
    parser.add_argument("--kinds", default="flat,hnsw", help="comma-separated: flat, hnsw, ivf")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--topk", type=int, default=100)
    parser.add_argument("--iters", type=int, default=1000, help="max timed iterations per cell")
    parser.add_argument("--min-iters", type=int, default=100)
    parser.add_argument("--budget-s", type=float, default=20.0, help="target seconds per cell")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument("--ef-search", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1,
                        help="FAISS OpenMP threads while timing (builds use all cores); 1 keeps a shared "
                             "machine's noise out of the overhead measurement")
    parser.add_argument("--out", default=None, help="results directory (default benchmarks/results)")
    parser.add_argument("--smoke", action="store_true", help="seconds: 2,000 items, a few iterations, results to a temp dir")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    tmp = None
    if args.smoke:
        args.sizes, args.batches, args.iters, args.min_iters, args.budget_s, args.warmup = "2000", "1,16", 20, 5, 0.2, 2
        if args.out is None:
            tmp = tempfile.TemporaryDirectory(prefix="faiss-bench-smoke-")
            args.out = tmp.name
    out = Path(args.out) if args.out else RESULTS
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    build_threads = faiss.omp_get_max_threads()
    rows: list[dict[str, Any]] = []
    build_s: dict[str, float] = {}
    for n in sizes:
        items = embeddings(n, seed=0)
        for kind in kinds:
            t0 = time.perf_counter()
            index = build_index(items, np.arange(n, dtype=np.int64) * 3 + 11, kind=kind, hnsw_m=args.hnsw_m,
                                ef_construction=args.ef_construction, ef_search=args.ef_search)
            build_s[f"{kind}@{n:,}"] = time.perf_counter() - t0
            print(f"built {kind} over {n:,} items in {build_s[f'{kind}@{n:,}']:.1f} s", flush=True)
            faiss.omp_set_num_threads(args.threads)
            for batch in batches:
                rows.extend(run_cell(index, kind, n, batch, args.topk, args))
                if not args.no_write:  # after every cell, so a long run keeps what it measured
                    write_results(rows, meta(args, build_s), out)
            faiss.omp_set_num_threads(build_threads)
            del index
            gc.collect()
    if tmp is not None:
        tmp.cleanup()


def meta(args: argparse.Namespace, build_s: dict[str, float]) -> dict[str, Any]:
    """What the results were measured with."""
    return {
        "command": "python benchmarks/faiss_overhead.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k in ("sizes", "kinds", "batches", "topk", "threads", "min_iters", "budget_s"))
            + (" (--smoke: not a measurement)" if args.smoke else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({platform.processor() or platform.platform()})",
        "faiss": faiss.__version__, "faiss_threads": args.threads, "numpy": np.__version__,
        "python": platform.python_version(), "topk": args.topk, "hnsw_m": args.hnsw_m,
        "ef_construction": args.ef_construction, "ef_search": args.ef_search, "build_s": build_s,
        "load_average": os.getloadavg(),
    }


if __name__ == "__main__":
    main()
