"""Loading a saved/exported graph validates it strictly (issue 12 item 10)."""

import json

import numpy as np
import pytest

from funnel import ColumnSchema, ColumnSelector, Ensemble, Operator, Schema, Table
from funnel.errors import ExportError
from funnel.ops import Cast, FilterCandidates, UnrollFeatures

REQ = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("seen", "int64", dims=(None,)),
              ColumnSchema("cands", "int64", dims=(None,))])


def _saved(tmp_path):
    graph = ["cands"] >> FilterCandidates(ColumnSelector(["seen"]), input_col="cands") >> Cast({"cands": "int32"})
    path = Ensemble(graph, REQ).save(tmp_path / "g")
    return path, json.loads((path / "funnel-graph.json").read_text())


def _write(path, doc):
    (path / "funnel-graph.json").write_text(json.dumps(doc))


def _op_entry(doc, type_name):
    return next(n for n in doc["graph"]["nodes"] if n["kind"] == "op" and n["op"]["type"] == type_name)


def test_round_trip_still_loads(tmp_path):
    path, _ = _saved(tmp_path)
    out = Ensemble.load(path).transform({"user_id": [1], "seen": [[2]], "cands": [[1, 2, 3]]})
    assert out["cands"].to_lists() == [[1, 3]]


def test_missing_key_is_an_error_not_a_default(tmp_path):
    path, doc = _saved(tmp_path)
    entry = _op_entry(doc, "funnel.FilterCandidates")
    del entry["op"]["config"]["input_col"]
    _write(path, doc)
    with pytest.raises(ExportError, match=rf"funnel-graph.json, node {entry['index']}: funnel.FilterCandidates config is invalid: Object missing required field `input_col`"):
        Ensemble.load(path)


def test_unknown_key_names_node_and_key(tmp_path):
    path, doc = _saved(tmp_path)
    entry = _op_entry(doc, "funnel.Cast")
    entry["op"]["config"]["bogus"] = 1
    _write(path, doc)
    with pytest.raises(ExportError, match=rf"node {entry['index']}: funnel.Cast config is invalid: Object contains unknown field `bogus`"):
        Ensemble.load(path)


def test_wrong_type_is_named(tmp_path):
    path, doc = _saved(tmp_path)
    entry = _op_entry(doc, "funnel.Cast")
    entry["op"]["config"]["dtypes"] = ["int32"]
    _write(path, doc)
    with pytest.raises(ExportError, match=r"Expected `object`, got `array` - at `\$.dtypes`"):
        Ensemble.load(path)


def test_bad_parent_index_is_named(tmp_path):
    path, doc = _saved(tmp_path)
    entry = _op_entry(doc, "funnel.Cast")
    entry["parents"] = [99]
    _write(path, doc)
    with pytest.raises(ExportError, match=rf"node {entry['index']} names parent 99, which is not an earlier node"):
        Ensemble.load(path)
    doc["graph"]["output"] = 42
    entry["parents"] = [entry["index"] - 1]
    _write(path, doc)
    with pytest.raises(ExportError, match=r"'graph.output' is 42, which is not a node"):
        Ensemble.load(path)


class Plain(Operator):
    """No Config: checked against __init__ (default from_config)."""

    def __init__(self, factor, name="x"):
        self.factor, self.name = factor, name

    def compute_output_schema(self, input_schema):
        return Schema([ColumnSchema(self.name, "int64")])

    def transform(self, table):
        return Table({self.name: np.asarray(table["user_id"]) * self.factor})

    def to_config(self):
        return {"factor": self.factor, "name": self.name}


def test_operator_without_config_struct_is_checked_against_its_signature(tmp_path):
    path = Ensemble(["user_id"] >> Plain(3), REQ).save(tmp_path / "p")
    doc = json.loads((path / "funnel-graph.json").read_text())
    entry = _op_entry(doc, f"{__name__}:Plain")
    entry["op"]["config"]["bogus"] = 1
    _write(path, doc)
    with pytest.raises(ExportError, match=r"config has unknown key\(s\) \['bogus'\]; it takes \['factor', 'name'\]"):
        Ensemble.load(path, trust_code=True)
    del entry["op"]["config"]["bogus"], entry["op"]["config"]["factor"]
    _write(path, doc)
    with pytest.raises(ExportError, match=r"config is missing key\(s\) \['factor'\]"):
        Ensemble.load(path, trust_code=True)


def test_unroll_config_is_strict(tmp_path):
    req = Schema([ColumnSchema("item_id", "int64", dims=(None,)), ColumnSchema("age", "float32")])
    path = Ensemble(["item_id", "age"] >> UnrollFeatures("item_id", ["age"]), req).save(tmp_path / "u")
    doc = json.loads((path / "funnel-graph.json").read_text())
    del _op_entry(doc, "funnel.UnrollFeatures")["op"]["config"]["unrolled_prefix"]
    _write(path, doc)
    with pytest.raises(ExportError, match="missing required field `unrolled_prefix`"):
        Ensemble.load(path)
