"""Served on the embedded Triton server (executor and ensemble mode) equals in-process, for a fixed seed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from funnel import ColumnSchema, ColumnSelector, Ensemble, Node, Ragged, Schema, Table
from funnel.ops import UnrollFeatures
from funnel_triton import TritonServer
from funnel_testing import LinearScore
from funnel_sampling import SoftmaxSampling, TopK

REQUEST = Schema(
    [
        ColumnSchema("user_age", "float32"),
        ColumnSchema("candidates", "int64", dims=(None,)),
    ]
)


def _ensemble(order: type, **kwargs: object) -> Ensemble:
    """request → UnrollFeatures → LinearScore (row-wise) → ordering op."""
    combined = Node.coerce(["candidates"]) >> UnrollFeatures("candidates", ColumnSelector(["user_age"]))
    scored = combined >> LinearScore(weight=0.01)
    return Ensemble(combined["candidates"] >> order(relevance_col=scored["score"], topk=4, **kwargs), REQUEST)


def _requests() -> list[Table]:
    rng = np.random.default_rng(3)
    out = []
    for rows in (1, 3, 5, 2):
        lengths = rng.integers(0, 9, size=rows)
        out.append(
            Table(
                {
                    "user_age": rng.random(rows).astype(np.float32),
                    "candidates": Ragged.from_lists(
                        [rng.choice(200, size=n, replace=False) for n in lengths], dtype="int64"
                    ),
                }
            )
        )
    return out


def _assert_same(served: Table, local: Table) -> None:
    np.testing.assert_array_equal(np.asarray(served["ordered_ids"]), local["ordered_ids"])
    np.testing.assert_array_equal(np.asarray(served["ordered_scores"]), local["ordered_scores"])


@pytest.mark.parametrize("mode", ["executor", "ensemble"])
def test_served_equals_in_process(tmp_path: Path, mode: str) -> None:
    def sampling() -> Ensemble:
        return _ensemble(SoftmaxSampling, textbook_temperature=0.05, seed=2024)

    repo = sampling().export(tmp_path / "repo", mode=mode)
    topk_repo = _ensemble(TopK).export(tmp_path / "topk_repo", name="topk", mode=mode)
    # one server for both graphs: add the TopK graph's models to the same repository
    # (ensemble mode's shared upstream step models are identical in both, so they are kept once)
    for model in topk_repo.iterdir():
        if model.is_dir() and not (repo / model.name).exists():
            shutil.copytree(model, repo / model.name)

    local_sampling, local_topk = sampling(), _ensemble(TopK)
    requests = _requests()
    with TritonServer(repo, timeout=120) as server:
        for table in requests:
            local = local_sampling.transform(table)
            served = server.infer(table, model="funnel")
            assert served.num_rows == table.num_rows
            _assert_same(served, local)
            _assert_same(server.infer(table, model="topk"), local_topk.transform(table))
