"""Integer ids reach a TF model in the dtype its signature declares (issue 12 item 1)."""

from __future__ import annotations

import numpy as np
import pytest
from funnel import ColumnSchema, Ensemble, Schema, SchemaError, Table
from funnel.ops import Cast
from funnel_tf import PredictTensorflow

FEATURES = ["user_age", "item_id", "item_score"]
# the signature takes user_age int32; FAISS-style ids and JSON rows arrive as int64 / float64
WIDE = Schema([ColumnSchema("user_age", "int64"), ColumnSchema("item_id", "int64"), ColumnSchema("item_score", "float64")])


def test_int64_column_feeds_an_int32_input_when_values_fit(savedmodel_dir, rows_maker, direct):
    ens = Ensemble(FEATURES >> PredictTensorflow(savedmodel_dir), WIDE)
    rows = rows_maker(3, 8)
    table = Table({"user_age": rows["user_age"].astype("int64"), "item_id": rows["item_id"],
                   "item_score": rows["item_score"].astype("float64")})
    np.testing.assert_allclose(ens.transform(table)["output_0"], direct(rows), rtol=1e-5, atol=1e-6)


def test_value_that_does_not_fit_names_the_column(savedmodel_dir, rows_maker):
    ens = Ensemble(FEATURES >> PredictTensorflow(savedmodel_dir), WIDE)
    rows = rows_maker(4, 2)
    table = Table({"user_age": np.array([30, 2**40], dtype="int64"), "item_id": rows["item_id"],
                   "item_score": rows["item_score"].astype("float64")})
    with pytest.raises(SchemaError, match=r"PredictTensorflow.*column 'user_age' has values in \[30, 1099511627776\], outside the range of int32"):
        ens.transform(table)


def test_float_ids_still_refused_at_build_with_the_cast_op_named(savedmodel_dir):
    floats = Schema([ColumnSchema("user_age", "int32"), ColumnSchema("item_id", "float64"), ColumnSchema("item_score", "float32")])
    with pytest.raises(SchemaError, match=r"'item_id' has dtype float64 .* takes int64.*funnel.ops.Cast"):
        Ensemble(FEATURES >> PredictTensorflow(savedmodel_dir), floats)


def test_cast_op_upstream(savedmodel_dir, rows_maker, direct):
    graph = FEATURES >> Cast({"user_age": "int32", "item_score": "float32"}) >> PredictTensorflow(savedmodel_dir)
    rows = rows_maker(5, 4)
    table = Table({"user_age": rows["user_age"].astype("int64"), "item_id": rows["item_id"],
                   "item_score": rows["item_score"].astype("float64")})
    np.testing.assert_allclose(Ensemble(graph, WIDE).transform(table)["output_0"], direct(rows), rtol=1e-5, atol=1e-6)
