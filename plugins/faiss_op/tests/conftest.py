"""Shared data for the funnel-faiss tests: clustered synthetic item embeddings."""

from __future__ import annotations

import numpy as np
import pytest

N_ITEMS, N_QUERIES, DIM, N_CLUSTERS = 20_000, 64, 32, 50


def clustered(n: int, d: int, clusters: int, seed: int) -> np.ndarray:
    """Unit-norm vectors around ``clusters`` random centres (what item embeddings look like)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="session")
def data() -> dict[str, np.ndarray]:
    """20k×32 clustered item vectors with non-contiguous int64 ids, and 64 queries alike."""
    x = clustered(N_ITEMS + N_QUERIES, DIM, N_CLUSTERS, seed=0)
    ids = (np.arange(N_ITEMS, dtype=np.int64) * 7 + 1_000_003)[np.random.default_rng(1).permutation(N_ITEMS)]
    return {"items": x[:N_ITEMS], "ids": ids, "queries": x[N_ITEMS:]}
