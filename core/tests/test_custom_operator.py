"""A user's own Operator subclass (not registered by a plugin) works in graphs and round trips."""

import numpy as np
import pytest

from funnel import ColumnSchema, ColumnSelector, Ensemble, ExportError, Ragged, Schema
from funnel.ops import UnrollFeatures

REQ = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("ts", "int64", dims=(None,))])


def test_custom_operator_in_graph_and_save_load(tmp_path):
    import custom_ops  # fixtures/ is on sys.path, like a user's own module

    ens = Ensemble(["ts"] >> custom_ops.RowwiseAge("ts", now=100.0), REQ)
    req = {"user_id": np.array([1, 2]), "ts": Ragged.from_lists([[90, 80], [99]])}
    out = ens.transform(req)
    assert out["age"].to_lists() == [[10.0, 20.0], [1.0]]  # row-wise op ran on candidate rows
    ens.save(tmp_path / "g")
    text = (tmp_path / "g" / "funnel-graph.json").read_text()
    assert '"custom_ops:RowwiseAge"' in text
    assert Ensemble.load(tmp_path / "g").transform(req) == out


def test_rowwise_lifting_after_unroll():
    import custom_ops

    combined = ["ts"] >> UnrollFeatures("ts", ColumnSelector(["user_id"]))
    ens = Ensemble(combined >> custom_ops.RowwiseAge("ts", now=10.0), REQ)
    out = ens.transform({"user_id": np.array([1, 2, 3]), "ts": Ragged.from_lists([[1, 2], [], [3]])})
    assert out["age"].to_lists() == [[9.0, 8.0], [], [7.0]]
    assert ens.output_schema["age"].is_ragged


def test_no_pickle_and_deterministic_save(tmp_path):
    import custom_ops

    ens = Ensemble(["ts"] >> custom_ops.RowwiseAge("ts", now=1.0), REQ)
    ens.save(tmp_path / "a")
    ens.save(tmp_path / "b")
    assert (tmp_path / "a" / "funnel-graph.json").read_bytes() == (tmp_path / "b" / "funnel-graph.json").read_bytes()
    assert not list((tmp_path / "a").rglob("*.pkl")) and b"pickle" not in (tmp_path / "a" / "funnel-graph.json").read_bytes()
    with pytest.raises(ExportError, match="not empty"):
        ens.save(tmp_path / "a")
    ens.save(tmp_path / "a", overwrite=True)
