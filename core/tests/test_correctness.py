"""Issue 12: nothing silently wrong in the executor, the graph binder and Table construction."""

import numpy as np
import pytest

from funnel import ColumnSchema, ColumnSelector, Ensemble, Operator, Ragged, Schema, SchemaError, Table
from funnel.errors import RequestError
from funnel.ops import FilterCandidates


class Ids(Operator):
    def compute_output_schema(self, input_schema):
        return Schema([ColumnSchema("out", "int64")])

    def transform(self, table):
        return Table({"out": np.asarray(table["user_id"]).astype(np.int64)})


REQ32 = Schema([ColumnSchema("user_id", "int32")])


# -- item 4: one lossless casting rule for requests --------------------------------------
def test_request_int64_to_int32_never_wraps():
    ens = Ensemble(["user_id"] >> Ids(), REQ32)
    assert ens.transform({"user_id": np.array([3, 4], dtype=np.int64)})["out"].tolist() == [3, 4]
    with pytest.raises(RequestError, match=r"request: column 'user_id' has values in \[5, 1099511627781\]"):
        ens.transform({"user_id": np.array([5, 2**40 + 5], dtype=np.int64)})


def test_request_float_ids_are_not_truncated():
    ens = Ensemble(["user_id"] >> Ids(), REQ32)
    assert ens.transform({"user_id": np.array([2.0, 7.0])})["out"].tolist() == [2, 7]
    with pytest.raises(RequestError, match="'user_id' holds non-integer values"):
        ens.transform({"user_id": np.array([2.5])})


# -- item 5: row-wise operators' outputs are checked ------------------------------------
class BadRowwise(Operator):
    rowwise = True

    def compute_output_schema(self, input_schema):
        return Schema([ColumnSchema("score", "float32")])

    def transform(self, table):
        return Table({"score": np.zeros(1, dtype=np.float32)})  # one value, whatever the candidates


def test_rowwise_output_with_wrong_length_names_the_operator():
    req = Schema([ColumnSchema("item_ids", "int64", dims=(None,))])
    ens = Ensemble(["item_ids"] >> BadRowwise(), req)
    with pytest.raises(SchemaError, match=r"BadRowwise \(row-wise over candidate lists\) returned 1 values in column 'score' for 4 candidate rows"):
        ens.transform({"item_ids": Ragged.from_lists([[1, 2, 3], [4]], dtype="int64")})


# -- item 7: list columns keep one representation ---------------------------------------
def test_equal_length_lists_stay_a_list_column():
    t = Table({"ids": [[1, 2], [3, 4]]})
    assert isinstance(t["ids"], Ragged) and t["ids"].to_lists() == [[1, 2], [3, 4]]


def test_all_empty_lists_keep_the_schema_dtype():
    req = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("seen", "int64", dims=(None,))])
    cands = Schema([ColumnSchema("cands", "int64", dims=(None,))])

    class Cands(Operator):
        def compute_output_schema(self, input_schema):
            return cands

        def transform(self, table):
            return Table({"cands": Ragged.from_lists([[1, 2, 3]] * table.num_rows, dtype="int64")})

    ens = Ensemble(["user_id"] >> Cands() >> FilterCandidates(filter_out=ColumnSelector(["seen"])), req)
    out = ens.transform({"user_id": [1, 2], "seen": [[], []]})
    assert out["cands"].to_lists() == [[1, 2, 3], [1, 2, 3]]
    frame = ens.transform(__import__("pandas").DataFrame({"user_id": [1], "seen": [[]]}))
    assert frame["cands"].tolist() == [[1, 2, 3]]


# -- item 8: binding a graph does not change the operator --------------------------------
class Reader(Operator):
    """Counts the columns its dependency resolved to (read at transform time)."""

    def __init__(self, dep):
        from funnel import Dependency

        self.dep = Dependency(dep)

    def compute_output_schema(self, input_schema):
        return Schema([ColumnSchema("n", "int64")])

    def transform(self, table):
        return Table({"n": np.full(table.num_rows, len(self.dep.columns), dtype=np.int64)})


def test_one_operator_in_two_graphs():
    from funnel import ColumnSelector

    reader = Reader(ColumnSelector(tags=["user"]))
    r1 = Schema([ColumnSchema("user_id", "int64", tags=["user"])])
    r2 = Schema([ColumnSchema("user_id", "int64", tags=["user"]), ColumnSchema("age", "float32", tags=["user"])])
    e1 = Ensemble(["user_id"] >> reader, r1)
    e2 = Ensemble(["user_id"] >> reader, r2)
    assert reader.dep.columns is None
    assert e1.transform({"user_id": [1]})["n"].tolist() == [1]
    assert e2.transform({"user_id": [1], "age": np.array([3.0], dtype=np.float32)})["n"].tolist() == [2]


def test_binding_resolves_dependencies_on_a_copy():
    class Scores(Operator):
        def compute_output_schema(self, input_schema):
            return Schema([ColumnSchema("s", "float32")])

        def transform(self, table):
            return Table({"s": np.ones(table.num_rows, dtype=np.float32)})

    scores = ["user_id"] >> Scores()
    reader = Reader(scores)
    ens = Ensemble(["user_id"] >> reader, Schema([ColumnSchema("user_id", "int64")]))
    assert reader.dep.columns is None  # the user's operator is untouched
    assert ens.transform({"user_id": [1, 2]})["n"].tolist() == [1, 1]
