"""SoftmaxSampling: distribution (chi-square), shapes, padding, seeding."""

from __future__ import annotations

import numpy as np
import pytest
from funnel import ColumnSchema, ColumnSelector, Ensemble, Node, Operator, Ragged, Schema, Table
from funnel.ops import UnrollFeatures
from funnel_sampling import SoftmaxSampling

# chi-square critical values at p = 0.001
CHI2_CRIT = {3: 16.27, 4: 18.47, 5: 20.52}

REQUEST = Schema(
    [ColumnSchema("item_id", "int64", is_list=True), ColumnSchema("score", "float32", is_list=True)]
)


def _table(ids: list[list[int]], scores: list[list[float]]) -> Table:
    return Table(
        {"item_id": Ragged.from_lists(ids, dtype="int64"), "score": Ragged.from_lists(scores, dtype="float32")}
    )


def _ensemble(op: Operator) -> Ensemble:
    return Ensemble(Node.coerce(["item_id"]) >> op, REQUEST)


def _same(a: Table, b: Table) -> bool:
    return bool(
        np.array_equal(a["ordered_ids"], b["ordered_ids"])
        and np.array_equal(a["ordered_scores"], b["ordered_scores"], equal_nan=True)
    )


def _chi2(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def test_first_position_matches_softmax_over_temperature() -> None:
    scores = np.array([0.0, 1.0, 2.0, 2.5, 3.0])
    temperature = 2.0
    n = 20000
    ids = np.tile(np.arange(5, dtype=np.int64), (n, 1))
    table = Table({"item_id": ids, "score": np.tile(scores.astype(np.float32), (n, 1))})
    op = SoftmaxSampling(relevance_col="score", textbook_temperature=temperature, topk=2, seed=7)
    out = Ensemble(Node.coerce(["item_id", "score"]) >> op, Schema(
        [ColumnSchema("item_id", "int64", dims=(5,), is_list=True), ColumnSchema("score", "float32", dims=(5,), is_list=True)]
    )).transform(table)
    first = out["ordered_ids"][:, 0]
    counts = np.bincount(first, minlength=5).astype(float)
    p = _softmax(scores / temperature)
    assert _chi2(counts, p) < CHI2_CRIT[4]
    # Merlin's formula, exp(score * temperature), is rejected by the same data.
    merlin = _softmax(scores * temperature)
    assert _chi2(counts, merlin) > 100 * CHI2_CRIT[4]
    # Without replacement: P(second = j) = sum_i p_i p_j / (1 - p_i)  (Plackett-Luce)
    second = out["ordered_ids"][:, 1]
    assert np.all(second != first)
    p2 = np.array([sum(p[i] * p[j] / (1 - p[i]) for i in range(5) if i != j) for j in range(5)])
    assert _chi2(np.bincount(second, minlength=5).astype(float), p2) < CHI2_CRIT[4]
    # ordered_scores are the raw relevance of the chosen candidates
    np.testing.assert_array_equal(out["ordered_scores"][:, 0], scores[first].astype(np.float32))


def test_variable_lengths_padding_and_membership() -> None:
    ids = [[10, 11, 12, 13, 14, 15], [20, 21], [], [30]]
    scores = [[0.1, 0.4, 0.2, 0.9, 0.3, 0.0], [1.0, 2.0], [], [5.0]]
    op = SoftmaxSampling(relevance_col=Node.coerce(["score"]), textbook_temperature=0.5, topk=3, seed=1)
    out = _ensemble(op).transform(_table(ids, scores))
    oid, osc = out["ordered_ids"], out["ordered_scores"]
    assert oid.shape == (4, 3) and oid.dtype == np.int64
    assert osc.shape == (4, 3) and osc.dtype == np.float32
    assert len(set(oid[0])) == 3 and set(oid[0]) <= set(ids[0])
    assert sorted(oid[1, :2]) == [20, 21] and oid[1, 2] == -1 and osc[1, 2] == 0.0
    assert list(oid[2]) == [-1, -1, -1] and np.all(osc[2] == 0.0)
    assert list(oid[3]) == [30, -1, -1] and osc[3, 0] == 5.0
    lookup = {i: s for row_i, row_s in zip(ids, scores, strict=True) for i, s in zip(row_i, row_s, strict=True)}
    for i, s in zip(oid.ravel(), osc.ravel(), strict=True):
        if i != -1:
            assert s == np.float32(lookup[int(i)])


def test_single_row_and_empty_batch() -> None:
    op = SoftmaxSampling(relevance_col="score", topk=2, seed=3)
    ens = Ensemble(Node.coerce(["item_id", "score"]) >> op, REQUEST)
    out = ens.transform(_table([[1, 2, 3]], [[0.0, 0.0, 9.0]]))
    assert out.num_rows == 1 and out["ordered_ids"].shape == (1, 2)
    empty = ens.transform(_table([], []))
    assert empty.num_rows == 0
    assert empty["ordered_ids"].shape == (0, 2) and empty["ordered_scores"].shape == (0, 2)


def test_seed_reproducible_and_independent_of_batching() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 12, size=30)
    ids = [list(rng.integers(0, 1000, size=n)) for n in lengths]
    scores = [list(rng.normal(size=n)) for n in lengths]
    full = _table(ids, scores)

    def op() -> SoftmaxSampling:
        return SoftmaxSampling(relevance_col=Node.coerce(["score"]), textbook_temperature=1.0, topk=5, seed=42)

    a = _ensemble(op())
    b = _ensemble(op())
    first, again = a.transform(full), a.transform(full)
    assert _same(first, b.transform(full))
    # the Nth call continues the stream: a new sample, identical for both operator instances
    assert not np.array_equal(first["ordered_ids"], again["ordered_ids"])
    assert _same(again, b.transform(full))
    # rows grouped differently into calls (as a dynamic batcher does) give the same result
    c = _ensemble(op())
    parts = [c.transform(t) for t in full.split([7, 0, 13, 10])]
    assert _same(Table.concat(parts), first)
    # another seed, another sample
    d = _ensemble(SoftmaxSampling(relevance_col=Node.coerce(["score"]), textbook_temperature=1.0, topk=5, seed=43))
    assert not np.array_equal(d.transform(full)["ordered_ids"], first["ordered_ids"])


def test_unseeded_operators_differ() -> None:
    table = _table([list(range(50))], [[0.0] * 50])
    a = _ensemble(SoftmaxSampling(relevance_col=Node.coerce(["score"]), topk=10)).transform(table)
    b = _ensemble(SoftmaxSampling(relevance_col=Node.coerce(["score"]), topk=10)).transform(table)
    assert not np.array_equal(a["ordered_ids"], b["ordered_ids"])


def test_neg_inf_and_nan_scores_come_last() -> None:
    ninf, nan = float("-inf"), float("nan")
    table = _table([[1, 2, 3, 4, 5]], [[nan, ninf, 0.0, ninf, 1.0]])
    op = SoftmaxSampling(relevance_col=Node.coerce(["score"]), textbook_temperature=1.0, topk=5, seed=0)
    ens = _ensemble(op)
    for _ in range(20):
        oid = ens.transform(table)["ordered_ids"][0]
        assert set(oid[:2]) == {3, 5}
        assert list(oid[2:]) == [2, 4, 1]  # -inf by position, then NaN


def test_temperature_extremes() -> None:
    table = _table([[1, 2, 3]], [[0.0, 1.0, 0.5]])
    cold = _ensemble(SoftmaxSampling(relevance_col=Node.coerce(["score"]), textbook_temperature=1e-4, topk=3, seed=0))
    for _ in range(10):
        assert list(cold.transform(table)["ordered_ids"][0]) == [2, 3, 1]


class _LinearScore(Operator):
    """A row-wise 'ranking model': output_1 = item_pop + user_bias, shaped (N, 1)."""

    rowwise = True

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        return Schema([ColumnSchema("output_1", "float32", dims=(1,))])

    def transform(self, table: Table) -> Table:
        score = np.asarray(table["item_pop"]) + np.asarray(table["user_bias"])
        return Table({"output_1": score.astype(np.float32).reshape(-1, 1)})


def test_in_a_multistage_graph() -> None:
    request = Schema(
        [
            ColumnSchema("user_bias", "float32"),
            ColumnSchema("item_id", "int64", is_list=True),
            ColumnSchema("item_pop", "float32", is_list=True),
        ]
    )
    combined = Node.coerce(["item_id", "item_pop"]) >> UnrollFeatures("item_id", ColumnSelector(["user_bias"]))
    ranking = combined >> _LinearScore()
    ordering = combined["item_id"] >> SoftmaxSampling(
        relevance_col=ranking["output_1"], topk=2, textbook_temperature=1e-3, seed=0
    )
    ens = Ensemble(ordering, request)
    out = ens.transform(
        {
            "user_bias": np.array([0.0, 10.0], dtype=np.float32),
            "item_id": Ragged.from_lists([[1, 2, 3], [4]], dtype="int64"),
            "item_pop": Ragged.from_lists([[0.1, 0.9, 0.5], [0.2]], dtype="float32"),
        }
    )
    assert out.column_names == ["ordered_ids", "ordered_scores", "ordered_lengths"]
    np.testing.assert_array_equal(out["ordered_ids"], [[2, 3], [4, -1]])
    np.testing.assert_allclose(out["ordered_scores"][0], [0.9, 0.5])
    assert out["ordered_scores"][1, 0] == pytest.approx(10.2) and out["ordered_scores"][1, 1] == 0.0
