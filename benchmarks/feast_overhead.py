"""QueryFeast vs a direct ``get_online_features`` call: the operator's overhead, and the cache.

A feature repository (1,000 users, 5,000 items) is built in a temporary directory and
materialized into sqlite and into a real ``redis-server`` started on a free loopback port.
For each (store, case) the paths are timed round-robin (one call of each per iteration, so
drift hits all alike):

- ``direct``:    ``store.get_online_features(refs, {key: unique ids}).to_dict()``
- ``op``:        ``QueryFeast.transform(Table)`` (dedupe, one call, convert, scatter back)
- ``op_cached``: the same with the in-process cache on (warm; ``cache_size`` 10,000)
- ``ensemble``:  ``Ensemble.transform(Table)`` around the uncached op (executor + validation)

Cases: ``user_1`` (1 user, user view with a list feature), ``items_100`` (1 row × 100
candidate items), ``users_64x100`` (64 rows × 100 candidates, drawn with repeats). Prints and
records p50/p95/p99 (ms), throughput (request rows/s and ids/s) and p50 ratios to ``direct``.
Results go to ``benchmarks/results/feast_overhead.{md,json}``.

    python benchmarks/feast_overhead.py
    python benchmarks/feast_overhead.py --stores sqlite --scale 0.3
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from funnel import ColumnSchema, Ensemble, Ragged, Schema, Table
from funnel.table import to_numpy
from funnel_feast import QueryFeast, build_feature_repo

RESULTS = Path(__file__).parent / "results"
N_USERS, N_ITEMS = 1000, 5000


def build_repo(root: Path, online_store_yaml: str) -> Path:
    """Parquet sources + feature_store.yaml, apply, materialize (funnel_feast.build_feature_repo)."""
    rng = np.random.default_rng(0)
    users = pd.DataFrame(
        {
            "user_id": np.arange(N_USERS, dtype=np.int64),
            "age": rng.integers(18, 80, N_USERS).astype(np.int32),
            "score": rng.random(N_USERS).astype(np.float32),
            "name": [f"user{i}" for i in range(N_USERS)],
            "genres": [rng.integers(0, 20, rng.integers(0, 6)).tolist() for _ in range(N_USERS)],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(N_ITEMS, dtype=np.int64),
            "item_category": rng.integers(0, 50, N_ITEMS),
            "item_price": rng.random(N_ITEMS) * 100,
            "item_brand": [f"brand{i % 97}" for i in range(N_ITEMS)],
            "item_popular": rng.random(N_ITEMS) < 0.1,
        }
    )
    return build_feature_repo(
        root,
        {"user_features": ("user_id", users), "item_features": ("item_id", items)},
        project="bench",
        online_store=online_store_yaml,
    )


@contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server on a free 127.0.0.1 port, for the duration of the block."""
    import redis  # noqa: PLC0415

    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server not found: run tools/system-deps.sh (or pass --stores sqlite)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean in milliseconds."""
    arr = np.asarray(samples) * 1e3
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "p99_ms": float(np.percentile(arr, 99)),
        "mean_ms": float(arr.mean()),
    }


def time_paths(paths: dict[str, Callable[[], Any]], iters: int, warmup: int) -> dict[str, list[float]]:
    """Round-robin timing: each iteration calls every path once."""
    for _ in range(warmup):
        for fn in paths.values():
            fn()
    gc.collect()
    gc.freeze()
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(iters):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    gc.unfreeze()
    return samples


def run_store(repo: Path, store_kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every case for one online store."""
    from feast import FeatureStore  # noqa: PLC0415

    store = FeatureStore(repo_path=str(repo))
    rng = np.random.default_rng(1)
    cases: list[tuple[str, str, str, Table, int]] = [
        (
            "user_1",
            "user_features",
            "user_id",
            Table({"user_id": np.array([42], dtype=np.int64)}),
            args.iters,
        ),
        (
            "items_100",
            "item_features",
            "candidate_ids",
            Table({"candidate_ids": Ragged.from_dense(rng.choice(N_ITEMS, (1, 100), replace=False))}),
            args.iters,
        ),
        (
            "users_64x100",
            "item_features",
            "candidate_ids",
            Table({"candidate_ids": Ragged.from_dense(rng.integers(0, N_ITEMS, (64, 100)))}),
            max(2 if args.smoke else 10, args.iters // 10),
        ),
    ]
    rows: list[dict[str, Any]] = []
    for case, view, column, table, iters in cases:
        op = QueryFeast.from_feature_view(store, view, column)
        cached = QueryFeast.from_feature_view(store, view, column, cache_size=10_000, cache_ttl=3600)
        col = table[column]
        ids = col.values if isinstance(col, Ragged) else col
        refs = op._refs
        key = op.entity
        request = Schema([ColumnSchema(column, "int64", dims=(None,) if isinstance(col, Ragged) else ())])
        ens = Ensemble([column] >> op, request)

        def direct(ids: np.ndarray = ids, refs: list[str] = refs, key: str = key) -> Any:
            return store.get_online_features(
                features=refs, entity_rows={key: np.unique(ids).tolist()}
            ).to_dict()

        paths: dict[str, Callable[[], Any]] = {
            "direct": direct,
            "op": lambda op=op, t=table: op.transform(t),
            "op_cached": lambda op=cached, t=table: op.transform(t),
            "ensemble": lambda e=ens, t=table: e.transform(t),
        }
        samples = time_paths(paths, iters=int(iters * args.scale) or 1, warmup=args.warmup)
        base = percentiles(samples["direct"])["p50_ms"]
        for path, s in samples.items():
            stats = percentiles(s)
            row = {
                "store": store_kind,
                "case": case,
                "path": path,
                "rows": table.num_rows,
                "ids": int(ids.shape[0]),
                "unique_ids": int(np.unique(ids).size),
                "iters": len(s),
                **stats,
                "rows_per_s": table.num_rows / (stats["mean_ms"] / 1e3),
                "ids_per_s": int(ids.shape[0]) / (stats["mean_ms"] / 1e3),
                "p50_vs_direct": stats["p50_ms"] / base,
            }
            rows.append(row)
            print(
                f"{store_kind:6} {case:13} {path:9} p50 {stats['p50_ms']:8.3f}  p95 {stats['p95_ms']:8.3f}  "
                f"p99 {stats['p99_ms']:8.3f} ms  {row['rows_per_s']:9.0f} rows/s  x{row['p50_vs_direct']:.2f}",
                flush=True,
            )
    return rows


def zipf_stream(n_requests: int, per_request: int, catalogue: int, exponent: float, seed: int) -> list[np.ndarray]:
    """``n_requests`` requests of ``per_request`` distinct item ids drawn from a Zipf law over
    the whole catalogue (rank r has weight 1 / r^exponent; ranks shuffled over the item ids)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, catalogue + 1, dtype=np.float64) ** exponent
    weights /= weights.sum()
    item_of_rank = rng.permutation(catalogue)
    return [item_of_rank[rng.choice(catalogue, per_request, replace=False, p=weights)] for _ in range(n_requests)]


def run_zipf(repo: Path, store_kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """A realistic item cache: a Zipf stream of 1 × 100-candidate requests over all N_ITEMS
    items, a cache smaller than the catalogue, starting cold; hit rates next to the uncached paths.

    Phases: ``cold`` = the first ``--cold`` requests after the cache is emptied (repeated on
    fresh caches), ``steady`` = the rest of the stream. ``direct`` and ``op`` (uncached) run
    round-robin with the cached op on the same requests.
    """
    from feast import FeatureStore  # noqa: PLC0415

    store = FeatureStore(repo_path=str(repo))
    rows: list[dict[str, Any]] = []
    n = max(args.cold + 10, int(args.zipf_requests * args.scale))
    stream = zipf_stream(n, 100, N_ITEMS, args.zipf_exponent, seed=7)
    distinct = int(np.unique(np.concatenate(stream)).size)
    op = QueryFeast.from_feature_view(store, "item_features", "candidate_ids")
    refs, key = op._refs, op.entity
    for size in args.cache_sizes:
        cached = QueryFeast.from_feature_view(store, "item_features", "candidate_ids", cache_size=size, cache_ttl=3600)
        tables = [Table({"candidate_ids": Ragged.from_dense(r[None])}) for r in stream]
        # warm the code paths (sqlite, Feast's resolution cache) on ids outside the stream's head
        warm = Table({"candidate_ids": Ragged.from_dense(np.arange(N_ITEMS - 100, N_ITEMS, dtype=np.int64)[None])})
        for _ in range(args.warmup):
            op.transform(warm)
        samples: dict[str, dict[str, list[float]]] = {"cold": {}, "steady": {}}
        hits: dict[str, list[int]] = {"cold": [0, 0], "steady": [0, 0]}
        repeats = max(1, args.cold_repeats)
        gc.collect()
        gc.freeze()
        for rep in range(repeats):
            cache = cached._cache
            cache.clear()
            last = len(tables) if rep == repeats - 1 else args.cold  # the stream goes on once
            for i, t in enumerate(tables[:last]):
                phase = "cold" if i < args.cold else "steady"
                h0, m0 = cache.hits, cache.misses
                paths = {
                    "direct": lambda t=t: store.get_online_features(
                        features=refs, entity_rows={key: to_numpy(t["candidate_ids"].values).tolist()}
                    ).to_dict(),
                    "op": lambda t=t: op.transform(t),
                    "op_cached": lambda t=t, c=cached: c.transform(t),
                }
                for name in (list(paths) if i % 2 == 0 else list(paths)[::-1]):
                    t0 = time.perf_counter()
                    paths[name]()
                    samples[phase].setdefault(name, []).append(time.perf_counter() - t0)
                hits[phase][0] += cache.hits - h0
                hits[phase][1] += cache.misses - m0
        gc.unfreeze()
        base = {ph: percentiles(v["direct"])["p50_ms"] for ph, v in samples.items() if v}
        for phase, by_path in samples.items():
            for path, s in by_path.items():
                stats = percentiles(s)
                h, m = hits[phase]
                row = {
                    "store": store_kind, "case": f"zipf_items_100_{phase}", "path": path,
                    "cache_size": size if path == "op_cached" else 0, "catalogue": N_ITEMS,
                    "distinct_items_in_stream": distinct, "zipf_exponent": args.zipf_exponent,
                    "rows": 1, "ids": 100, "unique_ids": 100, "iters": len(s), **stats,
                    "rows_per_s": 1 / (stats["mean_ms"] / 1e3), "ids_per_s": 100 / (stats["mean_ms"] / 1e3),
                    "p50_vs_direct": stats["p50_ms"] / base[phase],
                    "hit_rate": round(h / max(h + m, 1), 4) if path == "op_cached" else None,
                }
                rows.append(row)
                print(
                    f"{store_kind:6} zipf {phase:6} cache {size:5} {path:9} p50 {stats['p50_ms']:8.3f}  "
                    f"p99 {stats['p99_ms']:8.3f} ms  x{row['p50_vs_direct']:.2f}"
                    + (f"  hit rate {row['hit_rate']:.1%}" if row["hit_rate"] is not None else ""),
                    flush=True,
                )
    return rows


def write_results(rows: list[dict[str, Any]], meta: dict[str, Any], out: Path = RESULTS) -> None:
    """``out``/feast_overhead.{json,md} (default benchmarks/results)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "feast_overhead.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        "# QueryFeast overhead vs a direct `get_online_features` call",
        "",
        f"Run {meta['date']} on {meta['machine']} ({meta['cpus']} CPUs), Python {meta['python']}, "
        f"Feast {meta['feast']}, numpy {meta['numpy']}, load average before/after {meta.get('load_avg_before')} / "
        f"{meta.get('load_avg_after')}. Produced by `python benchmarks/feast_overhead.py "
        f"{meta.get('argv', '')}`".rstrip() + "`." + (" **Smoke run (tiny counts): not a measurement.**" if meta.get("smoke") else ""),
        "",
        "Paths are timed round-robin in the same run. `direct` = one `get_online_features` call on the "
        "batch's unique ids + `to_dict()`; `op` = `QueryFeast.transform` (dedupe, one call, typed numpy / "
        "Ragged columns scattered back to the input layout); `op_cached` = the same with the "
        "in-process cache; `ensemble` = `Ensemble.transform` around the uncached op. "
        "`x direct` is the p50 ratio to `direct`. Throughput is request rows/s and ids/s (1 / mean latency).",
        "",
        "## Fixed requests (the cache is pre-filled: every id it is asked for is in it — 100 % hits, a best case)",
        "",
        "| store | case | path | ids (unique) | p50 ms | p95 ms | p99 ms | rows/s | ids/s | x direct |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["case"].startswith("zipf"):
            continue
        lines.append(
            f"| {r['store']} | {r['case']} | {r['path']} | {r['ids']} ({r['unique_ids']}) | {r['p50_ms']:.3f} | "
            f"{r['p95_ms']:.3f} | {r['p99_ms']:.3f} | {r['rows_per_s']:.0f} | {r['ids_per_s']:.0f} | "
            f"{r['p50_vs_direct']:.2f} |"
        )
    zipf = [r for r in rows if r["case"].startswith("zipf")]
    if zipf:
        z = zipf[0]
        lines += [
            "",
            "## A realistic cache: Zipf request stream, cache smaller than the catalogue, from cold",
            "",
            f"Each request is 1 row × 100 distinct item ids drawn from a Zipf law (exponent {z['zipf_exponent']}) over "
            f"the whole catalogue of {z['catalogue']} items ({z['distinct_items_in_stream']} distinct items appear in "
            "the stream). The cache starts empty; `cold` = the first "
            f"{meta['args'].get('cold')} requests (on {meta['args'].get('cold_repeats')} fresh caches), `steady` = "
            "the rest of the stream. `direct`, uncached `op` and `op_cached` run round-robin on the same requests. "
            "Hit rate = cached ids / ids asked for in that phase.",
            "",
            "| store | phase | path | cache size | n | p50 ms | p95 ms | p99 ms | x direct | hit rate |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in zipf:
            hit = "–" if r["hit_rate"] is None else f"{r['hit_rate']:.1%}"
            size = r["cache_size"] or "off"
            lines.append(
                f"| {r['store']} | {r['case'].rsplit('_', 1)[1]} | {r['path']} | {size} | {r['iters']} | {r['p50_ms']:.3f} | "
                f"{r['p95_ms']:.3f} | {r['p99_ms']:.3f} | {r['p50_vs_direct']:.2f} | {hit} |"
            )
    (out / "feast_overhead.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Build the repositories, run every store and case, write the results."""
    import sys  # noqa: PLC0415

    import feast  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", default="sqlite,redis", help="comma-separated: sqlite, redis")
    parser.add_argument("--iters", type=int, default=300, help="timed iterations for the small cases")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the iteration counts")
    parser.add_argument("--zipf-requests", type=int, default=2000, help="length of the Zipf request stream")
    parser.add_argument("--zipf-exponent", type=float, default=1.0)
    parser.add_argument("--cache-sizes", default="500,1000", help="comma-separated item cache sizes (< catalogue)")
    parser.add_argument("--cold", type=int, default=50, help="requests counted as the cold start")
    parser.add_argument("--cold-repeats", type=int, default=3, help="fresh-cache repeats of the cold start")
    parser.add_argument("--smoke", action="store_true", help="seconds: sqlite only, a few iterations, results to a temp dir")
    parser.add_argument("--out", default=None, help="results directory (default benchmarks/results)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    args.cache_sizes = [int(x) for x in str(args.cache_sizes).split(",") if x]
    if any(c >= N_ITEMS for c in args.cache_sizes):
        parser.error(f"--cache-sizes must be smaller than the catalogue ({N_ITEMS} items)")
    if args.smoke:
        args.stores, args.iters, args.warmup, args.zipf_requests = "sqlite", 10, 2, 30
        args.cold, args.cold_repeats, args.cache_sizes = 10, 1, [500]
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="feast_bench_") as tmp:
        for kind in args.stores.split(","):
            if kind == "sqlite":
                repo = build_repo(Path(tmp) / "sqlite", "  type: sqlite\n  path: data/online.db")
                rows += run_store(repo, kind, args)
                rows += run_zipf(repo, kind, args)
            elif kind == "redis":
                with redis_server() as address:
                    repo = build_repo(Path(tmp) / "redis", f'  type: redis\n  connection_string: "{address}"')
                    rows += run_store(repo, kind, args)
                    rows += run_zipf(repo, kind, args)
            else:
                raise SystemExit(f"unknown store {kind!r}; use sqlite and/or redis")
        if args.smoke and args.out is None:
            args.out = str(Path(tmp) / "results")
            out = Path(args.out)
            write_results(rows, _meta(args, feast.__version__, load_before, sys.argv[1:] if argv is None else argv), out)
            return
    if not args.no_write:
        meta = _meta(args, feast.__version__, load_before, sys.argv[1:] if argv is None else argv)
        write_results(rows, meta, Path(args.out) if args.out else RESULTS)


def _meta(args: argparse.Namespace, feast_version: str, load_before: list[float], argv: list[str]) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "feast": feast_version,
        "numpy": np.__version__,
        "load_avg_before": load_before,
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "smoke": args.smoke,
        "argv": " ".join(argv),
        "args": vars(args),
    }


if __name__ == "__main__":
    main()
