"""funnel.ops column operators: Cast/AsType (lossless), Select, Rename — in-process and saved."""

import numpy as np
import pytest

from funnel import ColumnSchema, Ensemble, Ragged, Schema, SchemaError, Table
from funnel.ops import AsType, Cast, Rename, Select, UnrollFeatures
from funnel.registry import get_operator

REQ = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("item_id", "int64", dims=(None,)),
              ColumnSchema("age", "float64")])


def _request():
    return {"user_id": np.array([1, 2]), "item_id": Ragged.from_lists([[5, 6], [7]], dtype="int64"),
            "age": np.array([30.0, 40.0])}


def test_cast_is_lossless_and_range_checked():
    ens = Ensemble(["user_id", "item_id", "age"] >> Cast({"item_id": "int32", "age": "float32"}), REQ)
    assert ens.output_schema["item_id"].dtype == "int32" and ens.output_schema["age"].dtype == "float32"
    out = ens.transform(_request())
    assert out["item_id"].values.dtype == np.int32 and out["item_id"].to_lists() == [[5, 6], [7]]
    assert out["age"].dtype == np.float32 and out["user_id"].dtype == np.int64
    bad = _request() | {"item_id": Ragged.from_lists([[5, 2**31], [1]], dtype="int64")}
    with pytest.raises(SchemaError, match=r"Cast: column 'item_id' has values in \[1, 2147483648\], outside the range of int32"):
        ens.transform(bad)


def test_cast_refuses_lossy_dtypes_at_build():
    with pytest.raises(SchemaError, match="Cast: column 'age' has dtype float64, which cannot be cast to int32"):
        Ensemble(["age"] >> Cast({"age": "int32"}), REQ)
    with pytest.raises(SchemaError, match="AsType: input column 'nope' is missing"):
        Ensemble(["age"] >> AsType({"nope": "int32"}), REQ)


def test_cast_runs_on_candidate_aligned_columns():
    graph = ["item_id", "user_id"] >> UnrollFeatures("item_id", ["user_id"]) >> Cast({"user_id": "int32"})
    out = Ensemble(graph, REQ).transform(_request())
    assert out["user_id"].values.dtype == np.int32 and out["user_id"].to_lists() == [[1, 1], [2]]


def test_select_and_rename():
    ens = Ensemble(["user_id", "age"] >> Rename({"age": "user_age"}) >> Select(["user_age"]), REQ)
    out = ens.transform(_request())
    assert out.column_names == ["user_age"] and out["user_age"].tolist() == [30.0, 40.0]
    with pytest.raises(SchemaError, match=r"Rename: the renamed columns would repeat name\(s\) \['user_id'\]"):
        Ensemble(["user_id", "age"] >> Rename({"age": "user_id"}), REQ)
    with pytest.raises(SchemaError, match="Select: input column 'x' is missing"):
        Ensemble(["user_id"] >> Select(["x"]), REQ)


def test_registered_and_saved(tmp_path):
    for name, cls in [("funnel.Cast", Cast), ("funnel.AsType", AsType), ("funnel.Select", Select),
                      ("funnel.Rename", Rename)]:
        assert get_operator(name) is cls
    graph = ["user_id", "age"] >> Cast({"user_id": "int32"}) >> Rename({"age": "a"}) >> Select(["a", "user_id"])
    Ensemble(graph, REQ).save(tmp_path / "g")
    loaded = Ensemble.load(tmp_path / "g")
    out = loaded.transform(_request())
    assert out.column_names == ["a", "user_id"] and out["user_id"].dtype == np.int32
    assert isinstance(out, Table)
