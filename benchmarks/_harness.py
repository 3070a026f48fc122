"""A small shared timing harness: latency percentiles, throughput, JSON + markdown results.

    from _harness import measure, write_results
    stats = measure(lambda: client_call(), n=300, warmup=30, concurrency=8)
    write_results("my_bench", [{"path": "x", **stats.to_dict()}])   # benchmarks/results/my_bench.{json,md}
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Stats", "measure", "write_results", "RESULTS"]

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Stats:
    """Latencies in milliseconds; throughput in calls per second (wall clock, all threads)."""

    n: int
    concurrency: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float

    def to_dict(self) -> dict[str, Any]:
        """Rounded plain data."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def measure(fn: Callable[[], Any], n: int = 300, warmup: int = 30, concurrency: int = 1) -> Stats:
    """Call ``fn`` ``n`` times (after ``warmup`` untimed calls) from ``concurrency`` threads."""
    for _ in range(warmup):
        fn()
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    counter = iter(range(n))

    def worker() -> None:
        local = []
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            t0 = time.perf_counter()
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)
                break
            local.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(local)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    ms = np.asarray(latencies) * 1e3
    return Stats(
        n=len(latencies), concurrency=concurrency,
        p50_ms=float(np.percentile(ms, 50)), p95_ms=float(np.percentile(ms, 95)),
        p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()),
        throughput=len(latencies) / wall,
    )


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def write_results(name: str, rows: Sequence[dict[str, Any]], meta: dict[str, Any] | None = None,
                  out: Path | None = None) -> Path:
    """Write ``<out>/<name>.json`` and ``<name>.md`` (a table of ``rows``); ``out`` defaults to benchmarks/results."""
    out = RESULTS if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {**machine(), "load_avg": [round(x, 2) for x in os.getloadavg()], **(meta or {})}
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": list(rows)}, indent=2) + "\n")
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    lines = [f"# {name}", "", ", ".join(f"{k}: {v}" for k, v in meta.items()), "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in cols) + " |" for row in rows]
    path = out / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path
