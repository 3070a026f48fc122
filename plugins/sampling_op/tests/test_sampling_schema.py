"""Schema and argument errors: raised at bind time (or per batch) with clear messages."""

from __future__ import annotations

import numpy as np
import pytest
from funnel import ColumnSchema, ColumnSelector, Ensemble, Node, Ragged, Schema, SchemaError, Table
from funnel_sampling import SoftmaxSampling, TopK

REQUEST = Schema(
    [
        ColumnSchema("item_id", "int64", is_list=True),
        ColumnSchema("score", "float32", is_list=True),
        ColumnSchema("label", "str", is_list=True),
        ColumnSchema("user_id", "int64"),
    ]
)


def test_missing_relevance_column() -> None:
    with pytest.raises(SchemaError, match=r"SoftmaxSampling: dependency 'relevance_col' names column\(s\) \['relevance'\].*'item_id'"):
        Ensemble(Node.coerce(["item_id"]) >> SoftmaxSampling(relevance_col="relevance"), REQUEST)
    with pytest.raises(SchemaError, match="relevance_col is required"):
        TopK(relevance_col=None)


def test_relevance_must_be_a_numeric_list_column() -> None:
    with pytest.raises(SchemaError, match="'label'.*expected integer or unsigned integer or float"):
        Ensemble(Node.coerce(["item_id"]) >> TopK(relevance_col=ColumnSelector(["label"])), REQUEST)
    with pytest.raises(SchemaError, match="'user_id' must be a list column"):
        Ensemble(Node.coerce(["item_id"]) >> TopK(relevance_col=ColumnSelector(["user_id"])), REQUEST)


def test_ambiguous_or_multi_column_inputs() -> None:
    with pytest.raises(SchemaError, match="cannot tell which column holds the candidate ids.*input_col"):
        Ensemble(Node.coerce(["item_id", "label"]) >> TopK(relevance_col=ColumnSelector(["score"])), REQUEST)
    ok = Ensemble(
        Node.coerce(["item_id", "label"]) >> TopK(relevance_col=ColumnSelector(["score"]), input_col="label"),
        REQUEST,
    )
    assert ok.output_schema["ordered_ids"].dtype == "str"
    with pytest.raises(SchemaError, match="exactly one column"):
        Ensemble(Node.coerce(["item_id"]) >> TopK(relevance_col=Node.coerce(["score", "user_id"])), REQUEST)


def test_mismatched_lengths_at_transform() -> None:
    ens = Ensemble(Node.coerce(["item_id"]) >> TopK(relevance_col=ColumnSelector(["score"]), topk=2), REQUEST)
    table = Table(
        {
            "item_id": Ragged.from_lists([[1, 2, 3], [4]], dtype="int64"),
            "score": Ragged.from_lists([[0.1, 0.2], [0.3, 0.4]], dtype="float32"),
            "label": Ragged.from_lists([["a"], ["b"]], dtype="str"),
            "user_id": np.array([1, 2]),
        }
    )
    with pytest.raises(SchemaError, match=r"relevance column 'score' is not aligned with candidate ids 'item_id'.*\[2, 2\]"):
        ens.transform(table)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"topk": 0}, "topk must be a positive integer"),
        ({"topk": 2.5}, "topk must be a positive integer"),
        ({"temperature": 0.0}, "temperature must be a positive finite number"),
        ({"temperature": float("inf")}, "temperature must be a positive finite number"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        SoftmaxSampling(relevance_col="score", **kwargs)


@pytest.mark.parametrize("pad_id", [1.5, True, [0]])
def test_pad_id_of_another_type_is_refused(pad_id) -> None:
    # 1.5 used to pad integer ids with 1, True with 1
    with pytest.raises(SchemaError, match="pad_id must be an integer"):
        TopK(relevance_col="score", pad_id=pad_id)


@pytest.mark.parametrize(
    "ids,pad_id,match",
    [
        ("uint32", -1, r"range 0\.\.4294967295"),
        ("int32", 2**40, r"range -2147483648\.\.2147483647"),
        ("int64", "none", "pass an integer pad_id"),
        ("str", 0, "pass a string pad_id"),
    ],
)
def test_pad_id_must_fit_the_ids_when_the_graph_is_built(ids, pad_id, match) -> None:
    # these failed only when a short row met them, as an OverflowError/ValueError of that request,
    # or (an int for string ids) returned mixed-type id rows
    request = Schema([ColumnSchema("ids", ids, is_list=True), ColumnSchema("score", "float32", is_list=True)])
    with pytest.raises(SchemaError, match=f"TopK: pad_id={pad_id!r} cannot pad candidate ids 'ids' of dtype {ids}.*{match}"):
        Ensemble(Node.coerce(["ids", "score"]) >> TopK(relevance_col="score", pad_id=pad_id), request)


def test_pad_id_in_range_pads_short_rows() -> None:
    request = Schema([ColumnSchema("ids", "uint32", is_list=True), ColumnSchema("score", "float32", is_list=True)])
    ens = Ensemble(Node.coerce(["ids", "score"]) >> TopK(relevance_col="score", topk=3, pad_id=np.uint32(0)), request)
    out = ens.transform(Table({"ids": Ragged.from_lists([[7, 9]], dtype="uint32"),
                               "score": Ragged.from_lists([[0.1, 0.2]], dtype="float32")}))
    assert out["ordered_ids"].tolist() == [[9, 7, 0]] and out["ordered_ids"].dtype == np.uint32
