import numpy as np
import pytest

from funnel import ColumnSchema, ColumnSelector, Ensemble, Ragged, Schema, SchemaError, Table
from funnel.ops import FilterCandidates, UnrollFeatures

REQ = Schema(
    [
        ColumnSchema("user_id", "int64"),
        ColumnSchema("user_age", "float32"),
        ColumnSchema("seen", "int64", dims=(None,)),
        ColumnSchema("item_id", "int64", dims=(None,)),
        ColumnSchema("item_score", "float32", dims=(None,)),
    ]
)


def request(rows):
    return Table(
        {
            "user_id": np.array([r[0] for r in rows], dtype=np.int64),
            "user_age": np.array([r[1] for r in rows], dtype=np.float32),
            "seen": Ragged.from_lists([r[2] for r in rows], dtype="int64"),
            "item_id": Ragged.from_lists([r[3] for r in rows], dtype="int64"),
            "item_score": Ragged.from_lists([[float(i) / 10 for i in r[3]] for r in rows], dtype="float32"),
        }
    )


def unroll_graph():
    items = ["item_id", "item_score"] >> FilterCandidates(ColumnSelector("seen"), input_col="item_id")
    return items >> UnrollFeatures("item_id", ColumnSelector(["user_id", "user_age"]), unrolled_prefix="u_")


@pytest.mark.parametrize(
    "rows",
    [
        [(7, 30.0, [2], [1, 2, 3])],  # B = 1
        [(7, 30.0, [2], [1, 2, 3]), (8, 40.0, [], [4]), (9, 50.0, [5, 6], [5, 6]), (10, 60.0, [], [7, 8])],
    ],
)
def test_filter_then_unroll_batched(rows):
    out = Ensemble(unroll_graph(), REQ).transform(request(rows))
    assert out.num_rows == len(rows)
    expect_ids = [[i for i in r[3] if i not in r[2]] for r in rows]
    assert out["item_id"].to_lists() == expect_ids
    scores = out["item_score"].to_lists()
    assert [len(s) for s in scores] == [len(ids) for ids in expect_ids]
    assert np.allclose(out["item_score"].values, np.array([i / 10 for ids in expect_ids for i in ids], dtype=np.float32))
    assert out["u_user_id"].to_lists() == [[r[0]] * len(ids) for r, ids in zip(rows, expect_ids)]
    assert out["u_user_age"].to_lists() == [[r[1]] * len(ids) for r, ids in zip(rows, expect_ids)]
    for name in ("item_score", "u_user_id", "u_user_age"):
        assert out[name].same_offsets(out["item_id"])  # candidate-aligned


def test_empty_batch_through_builtins():
    out = Ensemble(unroll_graph(), REQ).transform(request([]))
    assert out.num_rows == 0


def test_unroll_accepts_dense_candidates_and_checks_alignment():
    req = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("cands", "int64", dims=(3,), is_list=True)])
    g = ["cands"] >> UnrollFeatures("cands", ColumnSelector(["user_id"]))
    out = Ensemble(g, req).transform({"user_id": np.array([1, 2]), "cands": np.array([[1, 2, 3], [4, 5, 6]])})
    assert out["user_id"].to_lists() == [[1, 1, 1], [2, 2, 2]]
    with pytest.raises(SchemaError, match="not a list column"):
        Ensemble(["user_id", "cands"] >> UnrollFeatures("cands", ColumnSelector([])), req)


def test_unroll_errors():
    req = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("item_id", "int64", dims=(None,)),
                  ColumnSchema("u_user_id", "int64", dims=(None,)), ColumnSchema("hist", "int64", dims=(None,))])
    with pytest.raises(SchemaError, match="clashes"):
        Ensemble(["item_id", "u_user_id"] >> UnrollFeatures("item_id", ColumnSelector(["user_id"]), "u_"), req)
    with pytest.raises(SchemaError, match="ragged list per row"):
        Ensemble(["item_id"] >> UnrollFeatures("item_id", ColumnSelector(["hist"])), req)
    with pytest.raises(SchemaError, match="item_id"):
        Ensemble(["item_score"] >> UnrollFeatures("item_id", ColumnSelector(["user_id"])), REQ)


def test_filter_with_scalar_filter_column():
    req = Schema([ColumnSchema("last", "int64"), ColumnSchema("cands", "int64", dims=(None,))])
    g = ["cands"] >> FilterCandidates(ColumnSelector("last"))
    out = Ensemble(g, req).transform({"last": np.array([2, 9]), "cands": Ragged.from_lists([[1, 2, 3], [9]])})
    assert out["cands"].to_lists() == [[1, 3], []]


def test_filter_string_ids_fall_back():
    req = Schema([ColumnSchema("seen", str, dims=(None,)), ColumnSchema("cands", str, dims=(None,))])
    g = ["cands"] >> FilterCandidates(ColumnSelector("seen"))
    out = Ensemble(g, req).transform(
        {"seen": Ragged.from_lists([["a"], []], dtype=str), "cands": Ragged.from_lists([["a", "b"], ["c"]], dtype=str)}
    )
    assert out["cands"].to_lists() == [["b"], ["c"]]


def test_builtins_save_load_round_trip(tmp_path):
    ens = Ensemble(unroll_graph(), REQ)
    ens.save(tmp_path / "g")
    loaded = Ensemble.load(tmp_path / "g")
    req = request([(7, 30.0, [2], [1, 2, 3]), (8, 40.0, [], [4])])
    assert loaded.transform(req) == ens.transform(req)
    assert loaded.output_schema == ens.output_schema
