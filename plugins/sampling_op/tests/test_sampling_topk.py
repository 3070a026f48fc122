"""TopK: deterministic ordering, ties by position, save/load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from funnel import ColumnSchema, ColumnSelector, Ensemble, Node, Ragged, Schema, Table
from funnel_sampling import SoftmaxSampling, TopK

REQUEST = Schema(
    [ColumnSchema("item_id", "int64", is_list=True), ColumnSchema("score", "float32", is_list=True)]
)


def _table(ids: list[list[int]], scores: list[list[float]]) -> Table:
    return Table(
        {"item_id": Ragged.from_lists(ids, dtype="int64"), "score": Ragged.from_lists(scores, dtype="float32")}
    )


def _reference(ids: list[list[int]], scores: list[list[float]], k: int) -> np.ndarray:
    out = np.full((len(ids), k), -1, dtype=np.int64)
    for r, (i, s) in enumerate(zip(ids, scores, strict=True)):
        order = sorted(range(len(i)), key=lambda j: (-np.float32(s[j]), j))[:k]
        out[r, : len(order)] = [i[j] for j in order]
    return out


def test_matches_a_per_row_sort_with_ties_by_position() -> None:
    rng = np.random.default_rng(5)
    lengths = rng.integers(0, 15, size=40)
    ids = [list(rng.integers(0, 100, size=n)) for n in lengths]
    scores = [list(rng.integers(0, 4, size=n).astype(float)) for n in lengths]  # many ties
    ens = Ensemble(Node.coerce(["item_id"]) >> TopK(relevance_col=ColumnSelector(["score"]), topk=6), REQUEST)
    out = ens.transform(_table(ids, scores))
    np.testing.assert_array_equal(out["ordered_ids"], _reference(ids, scores, 6))
    again = ens.transform(_table(ids, scores))
    np.testing.assert_array_equal(again["ordered_ids"], out["ordered_ids"])


def test_all_equal_scores_keep_candidate_order() -> None:
    ens = Ensemble(Node.coerce(["item_id", "score"]) >> TopK(relevance_col="score", topk=4), REQUEST)
    out = ens.transform(_table([[9, 3, 7, 1, 5]], [[0.5] * 5]))
    assert list(out["ordered_ids"][0]) == [9, 3, 7, 1]
    np.testing.assert_array_equal(out["ordered_scores"][0], np.float32([0.5] * 4))


def test_dense_inputs_and_string_ids_with_custom_pad() -> None:
    request = Schema(
        [ColumnSchema("item_id", "str", dims=(3,), is_list=True), ColumnSchema("score", "float64", dims=(3,), is_list=True)]
    )
    op = TopK(relevance_col="score", topk=4, pad_id="<none>")
    ens = Ensemble(Node.coerce(["item_id", "score"]) >> op, request)
    out = ens.transform(
        {
            "item_id": np.array([["a", "b", "c"], ["d", "e", "f"]], dtype=object),
            "score": np.array([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]]),
        }
    )
    assert out["ordered_ids"].tolist() == [["b", "c", "a", "<none>"], ["f", "d", "e", "<none>"]]
    assert out["ordered_scores"].dtype == np.float32


def test_save_load_round_trip(tmp_path: Path) -> None:
    ids, scores = [[1, 2, 3, 4], [5, 6]], [[0.3, 0.1, 0.4, 0.2], [0.0, 1.0]]
    top = Node.coerce(["item_id"]) >> TopK(relevance_col=ColumnSelector(["score"]), topk=3)
    ens = Ensemble(top, REQUEST)
    loaded = Ensemble.load(ens.save(tmp_path / "topk"))
    assert loaded.output_schema == ens.output_schema
    a, b = ens.transform(_table(ids, scores)), loaded.transform(_table(ids, scores))
    np.testing.assert_array_equal(a["ordered_ids"], b["ordered_ids"])
    np.testing.assert_array_equal(a["ordered_ids"], [[3, 1, 4], [6, 5, -1]])


def test_softmax_sampling_save_load_continues_identically(tmp_path: Path) -> None:
    def build() -> Ensemble:
        op = SoftmaxSampling(relevance_col=ColumnSelector(["score"]), textbook_temperature=0.7, topk=3, seed=11)
        return Ensemble(Node.coerce(["item_id"]) >> op, REQUEST)

    saved = build().save(tmp_path / "softmax")
    cfg = next(n for n in build().to_dict()["graph"]["nodes"] if n["kind"] == "op")["op"]["config"]
    assert cfg == {"relevance_col": "score", "topk": 3, "input_col": None, "pad_id": None, "pad_score": 0.0,
                   "temperature": None, "textbook_temperature": 0.7, "seed": 11}
    fresh, loaded = build(), Ensemble.load(saved)
    table = _table([[1, 2, 3, 4, 5], [6, 7, 8]], [[0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 1.0, 1.0]])
    for _ in range(3):
        np.testing.assert_array_equal(fresh.transform(table)["ordered_ids"], loaded.transform(table)["ordered_ids"])
