"""Unknown ids are handled per row (issue 12 item 9): KnownIds masks and flags, Fallback answers."""

import numpy as np
import pytest

from funnel import ColumnSchema, Ensemble, Operator, Schema, SchemaError, Table
from funnel.ops import Fallback, KnownIds

EMBEDDINGS = np.arange(10, dtype=np.float32) * 10  # an "embedding table" of 10 ids


class Lookup(Operator):
    """Like an embedding lookup: numpy indexing (negative ids wrap, large ids raise)."""

    def compute_output_schema(self, input_schema):
        return Schema([ColumnSchema("top", "int64", dims=(2,), is_list=True, is_ragged=False)])

    def transform(self, table):
        v = EMBEDDINGS[np.asarray(table["user_id"])]
        return Table({"top": np.stack([v, v + 1], axis=1).astype(np.int64)})


REQ = Schema([ColumnSchema("user_id", "int64")])


def _graph():
    checked = ["user_id"] >> KnownIds("user_id", valid_range=(1, 10), fill=1, flag_col="known_user")
    answer = checked >> Lookup()
    return answer >> Fallback(checked["known_user"], {"top": [7, 8]}, flag_output="fallback")


def test_unknown_ids_get_the_flagged_fallback_and_known_ids_their_answer():
    ens = Ensemble(_graph(), REQ)
    out = ens.transform({"user_id": np.array([3, -1, 0, 999999, 9])})
    assert out.column_names == ["top", "fallback"]
    assert out["fallback"].tolist() == [False, True, True, True, False]
    assert out["top"].tolist() == [[30, 31], [7, 8], [7, 8], [7, 8], [90, 91]]


def test_without_the_guard_the_same_ids_are_silently_wrong_or_fail():
    bare = Ensemble(["user_id"] >> Lookup(), REQ)
    assert bare.transform({"user_id": np.array([-1])})["top"].tolist() == [[90, 91]]  # wrapped: the last row
    with pytest.raises(Exception, match="out of bounds"):
        bare.transform({"user_id": np.array([3, 999999])})  # one bad id fails every row


def test_found_column_and_saved_graph(tmp_path):
    req = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("found", "bool")])
    checked = ["user_id", "found"] >> KnownIds("user_id", found_col="found", fill=1)
    graph = checked >> Lookup() >> Fallback(checked["known"], {"top": [0, 0]})
    loaded = Ensemble.load(Ensemble(graph, req).save(tmp_path / "g"))
    out = loaded.transform({"user_id": np.array([2, 5]), "found": np.array([True, False])})
    assert out["top"].tolist() == [[20, 21], [0, 0]] and out["fallback"].tolist() == [False, True]


def test_configuration_errors():
    with pytest.raises(SchemaError, match=r"fill=0 must itself be a valid id in \[1, 10\]"):
        KnownIds("user_id", valid_range=(1, 10), fill=0)
    checked = ["user_id"] >> KnownIds("user_id", valid_range=(0, 10))
    with pytest.raises(SchemaError, match=r"the value for 'top' has shape \(3,\); the column holds \(2,\) per row"):
        Ensemble(checked >> Lookup() >> Fallback(checked["known"], {"top": [1, 2, 3]}), REQ)
    with pytest.raises(SchemaError, match=r"values must name exactly the upstream columns \['top'\]; missing \['top'\]"):
        Ensemble(checked >> Lookup() >> Fallback(checked["known"], {"other": 1}), REQ)
