import numpy as np
import pytest

from funnel import ColumnSchema, Schema, SchemaError, Tags


def test_column_schema_is_immutable_and_value_equal():
    a = ColumnSchema("user_id", np.int32, tags=[Tags.USER, Tags.ID])
    b = ColumnSchema("user_id", "int32", tags=["id", "user"])
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.name = "x"
    assert a != a.with_dtype("int64")


def test_with_methods_return_copies():
    c = ColumnSchema("x", "float32")
    assert c.with_name("y").name == "y" and c.name == "x"
    assert c.with_tags([Tags.ITEM]).tags == ("item",)
    assert c.with_properties({"a": 1}).with_properties({"b": 2}).properties == {"a": 1, "b": 2}
    lst = c.with_shape((None,))
    assert lst.is_list and lst.is_ragged and lst.dims == (None,)
    fixed = ColumnSchema("f", "int64", dims=(10,), is_list=True)
    assert fixed.is_list and not fixed.is_ragged
    emb = ColumnSchema("e", "float32", dims=(64,))
    assert not emb.is_list
    assert lst.element() == c
    assert c.as_list() == lst


@pytest.mark.parametrize(
    "dtype,expected", [(np.int32, "int32"), ("float64", "float64"), (str, "str"), (np.dtype("U3"), "str"), (bool, "bool")]
)
def test_dtype_normalization(dtype, expected):
    assert ColumnSchema("c", dtype).dtype == expected


def test_bad_inputs_raise_schema_error():
    with pytest.raises(SchemaError):
        ColumnSchema("", "int32")
    with pytest.raises(SchemaError, match="unknown dtype"):
        ColumnSchema("c", "not-a-dtype")
    with pytest.raises(SchemaError, match="is_ragged"):
        ColumnSchema("c", "int32", dims=(3,), is_list=False, is_ragged=True)
    with pytest.raises(SchemaError, match="duplicate"):
        Schema(["a", "a"])


def test_schema_selection_and_arithmetic():
    s = Schema(
        [
            ColumnSchema("user_id", "int32", tags=[Tags.USER_ID]),
            ColumnSchema("age", "float32", tags=[Tags.USER]),
            ColumnSchema("item_id", "int64", tags=[Tags.ITEM_ID]),
        ]
    )
    assert s.column_names == ["user_id", "age", "item_id"]
    assert s["age"].dtype == "float32"
    assert s.select_by_name(["item_id", "user_id"]).column_names == ["item_id", "user_id"]
    assert s.select_by_tag(Tags.USER).column_names == ["age"]
    assert s.select_by_tag([Tags.USER, Tags.ITEM_ID]).column_names == ["age", "item_id"]
    assert s.excluding_by_name("age").column_names == ["user_id", "item_id"]
    assert (s - ["user_id"]).column_names == ["age", "item_id"]
    assert (s.select_by_name("age") + s.select_by_name("user_id")).column_names == ["age", "user_id"]
    assert [c.name for c in s] == s.column_names and len(s) == 3 and "age" in s
    with pytest.raises(SchemaError, match="available"):
        s["nope"]


def test_json_round_trip_is_human_readable():
    s = Schema(
        [
            ColumnSchema("user_id", "int32", tags=[Tags.USER_ID], properties={"domain": {"min": 0, "max": 943}}),
            ColumnSchema("history", "int64", dims=(None,)),
            ColumnSchema("emb", "float32", dims=(8,)),
            ColumnSchema("title", str),
        ]
    )
    text = s.to_json()
    assert '"name": "user_id"' in text and "\n" in text
    assert Schema.from_json(text) == s
    with pytest.raises(SchemaError, match="JSON"):
        Schema.from_json("{not json")
