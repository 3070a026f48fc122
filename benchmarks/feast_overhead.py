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
            max(10, args.iters // 10),
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


def write_results(rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """benchmarks/results/feast_overhead.{json,md}."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "feast_overhead.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        "# QueryFeast overhead vs a direct `get_online_features` call",
        "",
        f"Run {meta['date']} on {meta['machine']} ({meta['cpus']} CPUs), Python {meta['python']}, "
        f"Feast {meta['feast']}, numpy {meta['numpy']}. Produced by `python benchmarks/feast_overhead.py`.",
        "",
        "Paths are timed round-robin in the same run. `direct` = one `get_online_features` call on the "
        "batch's unique ids + `to_dict()`; `op` = `QueryFeast.transform` (dedupe, one call, typed numpy / "
        "Ragged columns scattered back to the input layout); `op_cached` = the same with the warm "
        "in-process cache; `ensemble` = `Ensemble.transform` around the uncached op. "
        "`x direct` is the p50 ratio to `direct`. Throughput is request rows/s and ids/s (1 / mean latency).",
        "",
        "| store | case | path | ids (unique) | p50 ms | p95 ms | p99 ms | rows/s | ids/s | x direct |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['store']} | {r['case']} | {r['path']} | {r['ids']} ({r['unique_ids']}) | {r['p50_ms']:.3f} | "
            f"{r['p95_ms']:.3f} | {r['p99_ms']:.3f} | {r['rows_per_s']:.0f} | {r['ids_per_s']:.0f} | "
            f"{r['p50_vs_direct']:.2f} |"
        )
    (RESULTS / "feast_overhead.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    """Build the repositories, run every store and case, write the results."""
    import feast  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", default="sqlite,redis", help="comma-separated: sqlite, redis")
    parser.add_argument("--iters", type=int, default=300, help="timed iterations for the small cases")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the iteration counts")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="feast_bench_") as tmp:
        for kind in args.stores.split(","):
            if kind == "sqlite":
                repo = build_repo(Path(tmp) / "sqlite", "  type: sqlite\n  path: data/online.db")
                rows += run_store(repo, kind, args)
            elif kind == "redis":
                with redis_server() as address:
                    repo = build_repo(Path(tmp) / "redis", f'  type: redis\n  connection_string: "{address}"')
                    rows += run_store(repo, kind, args)
            else:
                raise SystemExit(f"unknown store {kind!r}; use sqlite and/or redis")
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "feast": feast.__version__,
        "numpy": np.__version__,
        "args": vars(args),
    }
    if not args.no_write:
        write_results(rows, meta)


if __name__ == "__main__":
    main()
