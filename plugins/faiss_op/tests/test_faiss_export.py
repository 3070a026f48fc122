"""QueryFaiss inside an Ensemble: save/load round trip, artifacts, load failures."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from funnel import ColumnSchema, Ensemble, Schema, Table
from funnel.errors import ArtifactError
from funnel_faiss import INDEX_FILE, QueryFaiss, build_index

REQUEST = Schema([ColumnSchema("query", "float32", dims=(32,))])


def make_ensemble(index, **kwargs) -> Ensemble:
    return Ensemble(["query"] >> QueryFaiss(index, topk=25, include_distances=True, **kwargs), REQUEST)


@pytest.fixture(scope="module")
def hnsw_index(data):
    return build_index(data["items"], data["ids"], kind="hnsw")


def index_file(saved: Path) -> Path:
    (path,) = saved.glob(f"artifacts/*_QueryFaiss/{INDEX_FILE}")
    return path


@pytest.mark.parametrize("source", ["memory", "path"])
def test_save_load_round_trip(data, hnsw_index, tmp_path, source):
    index = hnsw_index
    if source == "path":
        index = tmp_path / "given.faiss"
        faiss.write_index(hnsw_index, str(index))
    ens = make_ensemble(index, ef_search=200)
    request = Table({"query": data["queries"][:16]})
    expected = ens.transform(request)
    saved = ens.save(tmp_path / "saved")

    config = json.loads((saved / "funnel-graph.json").read_text())
    (node,) = [n for n in config["graph"]["nodes"] if n["kind"] == "op"]
    assert node["op"]["type"] == "faiss.QueryFaiss"
    assert node["op"]["config"]["dimension"] == 32 and node["op"]["config"]["ef_search"] == 200
    # the index file is a plain FAISS index holding the same items
    assert faiss.read_index(str(index_file(saved))).ntotal == len(data["ids"])

    loaded = Ensemble.load(saved)
    assert loaded.transform(request) == expected
    assert loaded.output_schema == ens.output_schema
    (op,) = [b.node.op for b in loaded.graph.op_nodes]
    assert faiss.downcast_index(op.index.index).hnsw.efSearch == 200


def test_missing_index_fails_load_with_path(data, hnsw_index, tmp_path):
    saved = make_ensemble(hnsw_index).save(tmp_path / "saved")
    path = index_file(saved)
    path.unlink()
    with pytest.raises(ArtifactError, match=str(path)):
        Ensemble.load(saved)


def test_corrupt_index_fails_load_with_path(data, hnsw_index, tmp_path):
    saved = make_ensemble(hnsw_index).save(tmp_path / "saved")
    path = index_file(saved)
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises(ArtifactError, match=str(path)):
        Ensemble.load(saved)
    path.write_bytes(b"not a faiss index at all")
    with pytest.raises(ArtifactError, match=str(path)):
        Ensemble.load(saved)


def test_constructed_from_missing_path(tmp_path):
    with pytest.raises(ArtifactError, match="nope.faiss"):
        QueryFaiss(tmp_path / "nope.faiss")


def test_index_of_another_dimension_fails_load(data, hnsw_index, tmp_path):
    saved = make_ensemble(hnsw_index).save(tmp_path / "saved")
    faiss.write_index(build_index(np.eye(8, dtype=np.float32)), str(index_file(saved)))
    with pytest.raises(ArtifactError, match="dimension 8"):
        Ensemble.load(saved)
