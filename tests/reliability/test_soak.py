"""Soak: many requests of 1-64 users from 4 threads; no errors, and the resident memory of the
server's process tree stays flat after warm-up. CI-sized by default (2,000 requests);
``FUNNEL_SOAK_REQUESTS=10000`` runs the long variant."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from funnel_triton.client import infer, make_client

from .conftest import MULTISTAGE, record
from .graphs import multistage_request
from .test_faults import rss_tree_mb

REQUESTS = int(os.environ.get("FUNNEL_SOAK_REQUESTS", "2000"))
WARMUP = max(REQUESTS // 4, 200)
#: stated bound: after warm-up the server tree's RSS moves by less than this
FLAT_BOUND_MB = 64.0


def test_soak_memory_flat_and_no_errors(server, graphs):
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 65, size=REQUESTS)
    pool_of_requests = {int(n): multistage_request(int(n), seed=int(n)) for n in np.unique(sizes)}
    expected = {n: graphs[MULTISTAGE].transform(t) for n, t in list(pool_of_requests.items())[:8]}
    local = threading.local()
    errors: list[str] = []
    wrong: list[int] = []
    samples: list[tuple[int, float]] = []
    done = [0]
    lock = threading.Lock()
    pid = server._proc.pid

    def one(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = make_client(server.http_url, "http")
        n = int(sizes[i])
        try:
            got = infer(local.client, pool_of_requests[n], model=MULTISTAGE)
        except Exception as exc:  # noqa: BLE001 - counted
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        if n in expected and got != expected[n]:
            wrong.append(n)
        with lock:
            done[0] += 1
            if done[0] % 100 == 0:
                samples.append((done[0], rss_tree_mb(pid)))

    start = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(REQUESTS)))
    took = time.monotonic() - start
    after = [mb for n, mb in samples if n > WARMUP]
    spread = max(after) - min(after) if after else 0.0
    record("soak", f"{REQUESTS} requests of 1-64 users from 4 threads (multistage, executor mode)",
           f"no errors; RSS flat after {WARMUP} requests (spread < {FLAT_BOUND_MB:.0f} MB)",
           f"{len(errors)} errors, {len(wrong)} wrong answers, {took:.1f} s ({REQUESTS / took:.0f} req/s); "
           f"server tree RSS {samples[0][1]:.0f} MB at 100 requests, {min(after):.0f}-{max(after):.0f} MB after warm-up "
           f"(spread {spread:.1f} MB)")
    assert not errors, errors[:5]
    assert not wrong
    assert spread < FLAT_BOUND_MB, samples
    assert server.healthy and not server.restarts
