import numpy as np
import pandas as pd
import pytest

from funnel import ColumnSchema, ColumnSelector, Ensemble, Node, Operator, Ragged, Schema, SchemaError, Table
from funnel.errors import OperatorError, RequestError


class Candidates(Operator):
    """Emits ids user*10 .. user*10 + user%3 (1 to 3 candidates per row)."""

    def compute_output_schema(self, input_schema):
        self.require(input_schema, ["user_id"], dtype_kinds="iu")
        return Schema([ColumnSchema("candidate_ids", "int64", dims=(None,))])

    def transform(self, table):
        users = np.asarray(table["user_id"])
        return Table({"candidate_ids": Ragged.from_lists([[u * 10 + i for i in range(u % 3 + 1)] for u in users], dtype="int64")})


class Counter(Operator):
    calls = 0

    def __init__(self, out="twice"):
        self.out = out

    def compute_output_schema(self, input_schema):
        return Schema([ColumnSchema(self.out, "int64")])

    def transform(self, table):
        Counter.calls += 1
        return Table({self.out: np.asarray(table[table.column_names[0]]) * 2})


REQ = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("age", "float32")])


def test_composition_operators_and_selection():
    user = ["user_id"] >> Counter()
    both = user + ["age"]
    assert Ensemble(both, REQ).output_schema.column_names == ["twice", "age"]
    assert Ensemble(both - ["age"], REQ).output_schema.column_names == ["twice"]
    assert Ensemble(both["age"], REQ).output_schema.column_names == ["age"]
    assert Ensemble(ColumnSelector(["age"]) >> Counter(), REQ).output_schema.column_names == ["twice"]
    out = Ensemble(both, REQ).transform({"user_id": np.array([1, 2]), "age": np.array([1.0, 2.0], dtype=np.float32)})
    assert out["twice"].tolist() == [2, 4]


def test_shared_nodes_run_once_per_call():
    Counter.calls = 0
    shared = ["user_id"] >> Counter()
    graph = shared["twice"] + (shared >> Counter("four"))["four"] + (shared >> Counter("four2"))
    ens = Ensemble(graph, REQ)
    out = ens.transform({"user_id": np.array([1, 2, 3]), "age": np.zeros(3, dtype=np.float32)})
    assert out["four"].tolist() == [4, 8, 12]
    assert Counter.calls == 3  # one per op node, not one per consumer


def test_missing_column_names_operator_column_and_available():
    with pytest.raises(SchemaError) as err:
        Ensemble(["age"] >> Candidates(), REQ)
    msg = str(err.value)
    assert "Candidates" in msg and "'user_id'" in msg and "['age']" in msg
    with pytest.raises(SchemaError, match="not found.*available"):
        Ensemble(["nope"] >> Counter(), REQ)


def test_incompatible_dtype_is_reported_at_build():
    req = Schema([ColumnSchema("user_id", "float32")])
    with pytest.raises(SchemaError, match="user_id.*float32.*integer"):
        Ensemble(["user_id"] >> Candidates(), req)


def test_operator_class_instead_of_instance():
    with pytest.raises(SchemaError, match="instance"):
        ["user_id"] >> Candidates  # noqa: B018


def test_request_validation_errors():
    ens = Ensemble(["user_id"] >> Counter(), REQ)
    with pytest.raises(RequestError, match="missing column"):
        ens.transform({"age": np.zeros(1, dtype=np.float32)})
    with pytest.raises(RequestError, match="strings"):
        ens.transform({"user_id": np.array(["a"], dtype=object), "age": np.zeros(1, dtype=np.float32)})
    out = ens.transform({"user_id": np.array([1], dtype=np.int32), "age": np.zeros(1, dtype=np.float32)})
    assert out["twice"].tolist() == [2]  # int32 → int64 is a safe cast


def test_operator_failure_names_the_operator():
    class Boom(Operator):
        def transform(self, table):
            raise ValueError("backend exploded")

    with pytest.raises(OperatorError, match="Boom.*backend exploded"):
        Ensemble(["user_id"] >> Boom(), REQ).transform({"user_id": np.array([1]), "age": np.zeros(1, dtype=np.float32)})


def test_dataframe_in_dataframe_out():
    ens = Ensemble(["user_id"] >> Candidates(), REQ)
    df = ens.transform(pd.DataFrame({"user_id": [1, 2], "age": np.zeros(2, dtype=np.float32)}))
    assert isinstance(df, pd.DataFrame)
    assert df["candidate_ids"].tolist() == [[10, 11], [20, 21, 22]]


def test_node_coerce_rejects_junk():
    with pytest.raises(SchemaError):
        Node.coerce(42)


def test_lifting_rule_refuses_a_rowwise_op_over_mixed_list_and_scalar_inputs():
    """rowwise=True is lifted over candidate lists only when every input is a ragged list; a mix
    fails at bind time naming the operator and which inputs are lists."""
    import pytest
    from funnel import ColumnSchema, Ensemble, Schema
    from funnel.errors import SchemaError
    from funnel_testing import LinearScore

    req = Schema([ColumnSchema("candidates", "int64", dims=(None,)), ColumnSchema("user_age", "float32")])
    with pytest.raises(SchemaError, match=r"LinearScore is row-wise.*\['candidates'\] are ragged lists and \['user_age'\] are not"):
        Ensemble(["candidates", "user_age"] >> LinearScore(), req)
    lists = Schema([ColumnSchema("candidates", "int64", dims=(None,)), ColumnSchema("user_age", "float32", dims=(None,))])
    ens = Ensemble(["candidates", "user_age"] >> LinearScore(), lists)
    assert ens.graph.op_nodes[0].lifted and ens.output_schema["score"].is_list
