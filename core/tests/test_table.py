import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funnel import Ragged, SchemaError, Table
from funnel.table import schema_of

lists_of_ints = st.lists(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6), max_size=8)


@given(lists_of_ints)
@settings(max_examples=60, deadline=None)
def test_ragged_pandas_round_trip(rows):
    table = Table({"ids": Ragged.from_lists(rows, dtype="int64")}, num_rows=len(rows))
    df = table.to_pandas()
    assert len(df) == len(rows)
    back = Table.from_pandas(df, schema=schema_of(table))
    assert back["ids"].to_lists() == rows
    assert back.num_rows == len(rows)


@given(lists_of_ints)
@settings(max_examples=60, deadline=None)
def test_concat_split_round_trip(rows):
    table = Table({"ids": Ragged.from_lists(rows, dtype="int64"), "n": np.arange(len(rows))}, num_rows=len(rows))
    cut = len(rows) // 2
    parts = table.split([cut, len(rows) - cut])
    assert [p.num_rows for p in parts] == [cut, len(rows) - cut]
    assert Table.concat(parts) == table


def test_ragged_basics_and_empty_lists():
    r = Ragged.from_lists([[1, 2], [], [3]], dtype="int32")
    assert r.num_rows == 3 and r.lengths.tolist() == [2, 0, 1]
    assert r.to_lists() == [[1, 2], [], [3]]
    assert r.to_dense(pad_value=-1).tolist() == [[1, 2], [-1, -1], [3, -1]]
    assert r.take_rows([2, 0]).to_lists() == [[3], [1, 2]]
    assert Ragged.from_dense(np.array([[1, 2], [3, 4]])).to_lists() == [[1, 2], [3, 4]]
    assert Ragged.from_dense(np.array([[1, 2], [3, 4]]), lengths=[1, 2]).to_lists() == [[1], [3, 4]]
    empty = Ragged.from_lists([])
    assert empty.num_rows == 0 and empty.to_lists() == []


def test_ragged_validation_messages():
    with pytest.raises(SchemaError, match="start at 0"):
        Ragged(np.arange(3), np.array([1, 3]))
    with pytest.raises(SchemaError, match="values"):
        Ragged(np.arange(3), np.array([0, 2]))
    with pytest.raises(SchemaError, match="integers"):
        Ragged(np.arange(3), np.array([0.0, 3.0]))


def test_table_checks_row_counts_and_names():
    with pytest.raises(SchemaError, match="rows"):
        Table({"a": np.arange(3), "b": np.arange(4)})
    t = Table({"a": np.arange(3), "b": [[1], [2, 3], []]})
    assert isinstance(t["b"], Ragged)
    with pytest.raises(SchemaError, match="available"):
        t["zzz"]
    assert t.select(["b"]).column_names == ["b"]
    assert t.drop(["b"]).column_names == ["a"]
    assert t.device == "cpu"


def test_empty_batch():
    t = Table({"a": np.zeros(0, dtype=np.int64), "b": Ragged.from_lists([], dtype="int64")})
    assert t.num_rows == 0
    assert t.to_pandas().shape == (0, 2)
    assert Table.concat([t, t]).num_rows == 0


def test_pandas_scalar_string_and_vector_columns():
    df = pd.DataFrame({"user_id": np.array([1, 2], dtype=np.int32), "name": ["a", "b"], "hist": [[1, 2], [3]]})
    t = Table.from_pandas(df)
    assert t["user_id"].dtype == np.int32 and t["name"].dtype == object
    assert t["hist"].to_lists() == [[1, 2], [3]]
    emb = Table({"e": np.ones((2, 4), dtype=np.float32)})
    assert emb.to_pandas()["e"].iloc[0].tolist() == [1.0] * 4


def test_ragged_coerce_accepts_list_columns_and_names_the_rest():
    r = Ragged.from_lists([[1], [2, 3]])
    assert Ragged.coerce(r) is r
    assert Ragged.coerce(np.array([[1, 2], [3, 4]])).to_lists() == [[1, 2], [3, 4]]
    with pytest.raises(SchemaError, match="ids must be a list column"):
        Ragged.coerce(np.array([1, 2]), "ids")


def test_from_pandas_and_from_lists_cast_losslessly_or_say_which_column():
    """A DataFrame column cast to the request schema's dtype never loses values silently."""
    import pandas as pd
    import pytest
    from funnel import ColumnSchema, Schema, Table
    from funnel.errors import SchemaError
    from funnel.table import Ragged

    schema = Schema([ColumnSchema("user_id", "int32"), ColumnSchema("age", "int64")])
    ok = Table.from_pandas(pd.DataFrame({"user_id": [1, 2], "age": [30.0, 41.0]}), schema=schema)
    assert ok["user_id"].dtype == "int32" and ok["age"].tolist() == [30, 41]
    with pytest.raises(SchemaError, match="Table.from_pandas.*'age'"):
        Table.from_pandas(pd.DataFrame({"user_id": [1, 2], "age": [30.5, 41.0]}), schema=schema)
    with pytest.raises(SchemaError, match="Table.from_pandas.*'user_id'"):
        Table.from_pandas(pd.DataFrame({"user_id": [1, 2**40], "age": [1, 2]}), schema=schema)
    assert Ragged.from_lists([[1.0, 2.0], [3.0]], dtype="int64").values.tolist() == [1, 2, 3]
    with pytest.raises(SchemaError, match="Ragged.from_lists"):
        Ragged.from_lists([[1.5], [2.0]], dtype="int64")
