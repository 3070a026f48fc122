"""Small real graphs the reliability suite serves (built in seconds, no hub downloads).

``multistage``: a retrieval → filter → score → order pipeline like the multistage demo:
FAISS retrieval (funnel-faiss) over 2,000 items, FilterCandidates, UnrollFeatures, a
row-wise scorer and TopK (funnel-sampling). ``lists``: core's demo graph with ragged list
inputs (``funnel_testing.demo_ensemble``).
"""

from __future__ import annotations

import numpy as np

from funnel import ColumnSchema, ColumnSelector, Ensemble, Node, Ragged, Schema, Table
from funnel.ops import FilterCandidates, UnrollFeatures
from funnel_testing import LinearScore, demo_ensemble, demo_request

DIM = 16
ITEMS = 2000

MULTISTAGE_REQUEST = Schema([
    ColumnSchema("user_id", "int64"),
    ColumnSchema("user_age", "float32"),
    ColumnSchema("query", "float32", dims=(DIM,)),
    ColumnSchema("seen", "int64", dims=(None,)),
])


def item_vectors(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((ITEMS, DIM)).astype(np.float32), np.arange(ITEMS, dtype=np.int64) * 3 + 1


def multistage_ensemble(index_path=None) -> Ensemble:
    """query → QueryFaiss(top 30) → FilterCandidates(seen) → UnrollFeatures → LinearScore → TopK(10)."""
    from funnel_faiss import QueryFaiss, build_index
    from funnel_sampling import TopK

    vectors, ids = item_vectors()
    index = index_path if index_path is not None else build_index(vectors, ids, kind="flat")
    retrieved = Node.coerce(["query"]) >> QueryFaiss(index, topk=30, output_col="candidates")
    filtered = (retrieved + ["seen"]) >> FilterCandidates("seen", input_col="candidates")
    unrolled = filtered >> UnrollFeatures("candidates", ColumnSelector(["user_id", "user_age"]))
    scored = unrolled >> LinearScore(weight=0.001)
    ordered = unrolled["candidates"] >> TopK(relevance_col=scored["score"], topk=10)
    return Ensemble(ordered, MULTISTAGE_REQUEST)


def multistage_request(rows: int, seed: int = 0) -> Table:
    rng = np.random.default_rng(seed)
    _, ids = item_vectors()
    return Table({
        "user_id": np.arange(rows, dtype=np.int64) + 1,
        "user_age": (rng.random(rows) * 50 + 18).astype(np.float32),
        "query": rng.standard_normal((rows, DIM)).astype(np.float32),
        "seen": Ragged.from_lists([rng.choice(ids, size=int(rng.integers(0, 6)), replace=False) for _ in range(rows)],
                                  dtype="int64"),
    })


def lists_ensemble() -> Ensemble:
    return demo_ensemble()


def lists_request(rows: int, seed: int = 0) -> Table:
    return demo_request(rows, seed=seed)


__all__ = ["multistage_ensemble", "multistage_request", "lists_ensemble", "lists_request", "MULTISTAGE_REQUEST"]
