"""PredictTensorflow served on the embedded Triton server (executor mode) equals in-process."""

from __future__ import annotations

import numpy as np
import pytest
from funnel import ColumnSchema, ColumnSelector, Ensemble, Ragged, Schema, Table
from funnel.ops import UnrollFeatures
from funnel_triton import TritonServer
from funnel_tf import PredictTensorflow

REQUEST = Schema(
    [
        ColumnSchema("user_age", "int32"),
        ColumnSchema("item_id", "int64", dims=(None,)),
        ColumnSchema("item_score", "float32", dims=(None,)),
    ]
)


def _request(seed: int, users: int) -> Table:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 6, users)
    lengths[0] = max(lengths[0], 1)
    items = Ragged.from_lengths(rng.integers(0, 50, int(lengths.sum())).astype("int64"), lengths)
    scores = Ragged(rng.random(int(lengths.sum())).astype("float32"), items.offsets)
    ages = rng.integers(18, 80, users).astype("int32")
    return Table({"user_age": ages, "item_id": items, "item_score": scores})


@pytest.fixture(scope="module")
def ranking_ensemble(savedmodel_dir):
    unrolled = ["item_id", "item_score"] >> UnrollFeatures("item_id", ColumnSelector(["user_age"]))
    scored = unrolled >> PredictTensorflow(savedmodel_dir)
    return Ensemble(unrolled["item_id"] + scored, REQUEST)


def test_served_executor_equals_in_process(ranking_ensemble, tmp_path, direct):
    repo = ranking_ensemble.export(tmp_path / "repo")
    assert (repo / "funnel").is_dir()
    with TritonServer(repo, timeout=180) as server:
        for seed, users in ((1, 1), (2, 32)):
            table = _request(seed, users)
            local = ranking_ensemble.transform(table)
            served = server.infer(table, model="funnel")
            assert isinstance(served["output_0"], Ragged)
            assert served["output_0"].same_offsets(local["output_0"])
            assert served["item_id"].to_lists() == local["item_id"].to_lists()
            np.testing.assert_allclose(
                served["output_0"].values, local["output_0"].values, rtol=1e-6, atol=1e-7
            )
            # and both equal the Keras model on the flattened candidate rows
            lengths = np.diff(table["item_id"].offsets)
            flat = {
                "user_age": np.repeat(table["user_age"], lengths),
                "item_id": table["item_id"].values,
                "item_score": table["item_score"].values,
            }
            np.testing.assert_allclose(local["output_0"].values, direct(flat), rtol=1e-5, atol=1e-6)
