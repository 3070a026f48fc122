"""QueryFaiss and build_index against real FAISS indexes (recall, ids, batching, errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from funnel import ColumnSchema, Ensemble, Ragged, Schema, SchemaError, Table
from funnel.registry import get_operator
from funnel_faiss import QueryFaiss, build_index

DIM = 32
#: Recall@100 floors against exact search on the 20k clustered set (measured: see README).
RECALL_FLOOR = {"ivf": 0.90, "hnsw": 0.95}


@pytest.fixture(scope="module")
def indexes(data, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("indexes")
    paths = {}
    for kind in ("flat", "ivf", "hnsw"):
        paths[kind] = root / f"{kind}.faiss"
        build_index(data["items"], data["ids"], paths[kind], kind=kind)
    return paths


def recall(found: Ragged, truth: Ragged) -> float:
    hits = sum(len(set(a) & set(b)) for a, b in zip(found.to_lists(), truth.to_lists(), strict=True))
    return hits / sum(len(b) for b in truth.to_lists())


def test_plugin_listed_by_cli():
    funnel = Path(sys.executable).with_name("funnel")
    out = subprocess.run([str(funnel), "plugins", "--json"], capture_output=True, text=True, check=True)
    entry = {p["name"]: p for p in json.loads(out.stdout)}["faiss"]
    assert entry["distribution"] == "funnel-faiss"
    assert "faiss.QueryFaiss" in entry["operators"]
    assert get_operator("faiss.QueryFaiss") is QueryFaiss


def test_written_file_is_plain_faiss_and_ids_are_kept(data, indexes):
    index = faiss.read_index(str(indexes["flat"]))
    assert index.ntotal == len(data["ids"]) and index.d == DIM
    # each item's own vector finds itself (exact, inner product of unit vectors)
    _, found = index.search(data["items"][:50], 1)
    np.testing.assert_array_equal(found[:, 0], data["ids"][:50])


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_recall_at_100_against_flat(data, indexes, kind):
    flat = QueryFaiss(indexes["flat"], topk=100)
    approx = QueryFaiss(indexes[kind], topk=100)
    table = Table({"query": data["queries"]})
    truth = flat.transform(table)["candidate_ids"]
    found = approx.transform(table)["candidate_ids"]
    assert set(np.unique(found.values)) <= set(data["ids"].tolist())
    assert recall(found, truth) >= RECALL_FLOOR[kind]


def test_search_params_change_results(data, indexes):
    table = Table({"query": data["queries"]})
    truth = QueryFaiss(indexes["flat"], topk=100).transform(table)["candidate_ids"]
    low = QueryFaiss(indexes["ivf"], topk=100, nprobe=1).transform(table)["candidate_ids"]
    high = QueryFaiss(indexes["ivf"], topk=100, nprobe=64).transform(table)["candidate_ids"]
    assert recall(low, truth) < recall(high, truth)
    hnsw = QueryFaiss(indexes["hnsw"], topk=100, ef_search=400).transform(table)["candidate_ids"]
    assert recall(hnsw, truth) >= RECALL_FLOOR["hnsw"]
    with pytest.raises(SchemaError, match="not an IVF index"):
        QueryFaiss(indexes["flat"], nprobe=4)
    with pytest.raises(SchemaError, match="not an HNSW index"):
        QueryFaiss(indexes["ivf"], ef_search=4)


@pytest.mark.parametrize("batch", [1, 16])
def test_batch_equals_direct_search_with_one_call(data, indexes, batch):
    op = QueryFaiss(indexes["hnsw"], topk=20, include_distances=True)
    q = data["queries"][:batch]
    calls = []
    real = op.index

    class Counting:  # counts calls on the real index; the search itself is FAISS's
        d = real.d

        def search(self, x, k):
            calls.append(x.shape)
            return real.search(x, k)

    op.index = Counting()
    out = op.transform(Table({"query": q}))
    assert calls == [(batch, DIM)]
    dist, ids = real.search(q, 20)
    assert out.num_rows == batch
    assert out["candidate_ids"].to_lists() == ids.tolist()
    assert out["candidate_ids"].same_offsets(out["candidate_distances"])
    np.testing.assert_allclose(out["candidate_distances"].to_dense(), dist)
    assert out["candidate_ids"].values.dtype == np.int64


def test_fewer_items_than_topk_drops_minus_one(data):
    small = build_index(data["items"][:7], data["ids"][:7], kind="flat", metric="l2")
    op = QueryFaiss(small, topk=10, include_distances=True)
    out = op.transform(Table({"q": data["queries"][:3]}))
    ids = out["candidate_ids"]
    assert ids.to_lists() and all(len(row) == 7 for row in ids.to_lists())
    assert -1 not in ids.values
    assert set(ids.values.tolist()) == set(data["ids"][:7].tolist())
    assert out["candidate_distances"].same_offsets(ids)
    # l2: ascending distances; no FAISS padding value leaks through
    assert all(np.all(np.diff(r) >= 0) for r in out["candidate_distances"])
    assert np.all(np.abs(out["candidate_distances"].values) < 1e30)


def test_ivf_rows_of_different_lengths(data):
    # a tiny IVF probed in 1 of many lists finds fewer than topk for some queries
    index = build_index(data["items"][:2000], data["ids"][:2000], kind="ivf", nlist=50, nprobe=1)
    out = QueryFaiss(index, topk=100).transform(Table({"q": data["queries"][:16]}))["candidate_ids"]
    lengths = np.diff(out.offsets)
    assert out.num_rows == 16 and lengths.max() <= 100 and lengths.min() < 100
    assert -1 not in out.values


def test_empty_batch(indexes):
    out = QueryFaiss(indexes["flat"], topk=5).transform(Table({"q": np.zeros((0, DIM), np.float32)}))
    assert out.num_rows == 0 and out["candidate_ids"].num_rows == 0


def test_dimension_errors_name_the_expected_dimension(data, indexes):
    op = QueryFaiss(indexes["flat"], topk=5)
    with pytest.raises(SchemaError, match="32"):
        Ensemble(["q"] >> op, Schema([ColumnSchema("q", "float32", dims=(16,))]))
    with pytest.raises(SchemaError, match="float"):
        Ensemble(["q"] >> op, Schema([ColumnSchema("q", "int64", dims=(32,))]))
    with pytest.raises(SchemaError, match=r"\(rows, 32\)"):
        op.transform(Table({"q": np.zeros((2, 16), np.float32)}))
    with pytest.raises(SchemaError, match="query_col"):
        Ensemble(["q", "r"] >> op, Schema([ColumnSchema("q", dims=(32,)), ColumnSchema("r", dims=(32,))]))
    # float64 is cast, and the result equals float32
    a = op.transform(Table({"q": data["queries"][:2].astype(np.float64)}))
    b = op.transform(Table({"q": data["queries"][:2]}))
    assert a == b


def test_build_index_rejects_bad_input(data):
    with pytest.raises(SchemaError, match="-1"):
        build_index(data["items"][:3], np.array([1, -1, 2]))
    with pytest.raises(SchemaError, match="3 integers"):
        build_index(data["items"][:3], np.array([1, 2]))
    with pytest.raises(SchemaError, match="kind"):
        build_index(data["items"][:3], kind="lsh")


def test_build_progress_is_printed(data, capsys):
    build_index(data["items"][:1000], kind="hnsw", progress=True)
    assert "[funnel-faiss] hnsw n=1000 d=32" in capsys.readouterr().err


def test_search_params_never_change_the_callers_index(data, indexes):
    """Issue 12 item 8: nprobe/ef_search apply to the operator's index, not the object passed in."""
    ivf = faiss.read_index(str(indexes["ivf"]))
    before = faiss.extract_index_ivf(ivf).nprobe
    table = Table({"q": data["queries"][:8]})
    low = QueryFaiss(ivf, topk=100, nprobe=1)
    high = QueryFaiss(ivf, topk=100, nprobe=64)
    assert faiss.extract_index_ivf(ivf).nprobe == before
    # each operator keeps its own setting although both came from the same object
    assert faiss.extract_index_ivf(low.index).nprobe == 1 and faiss.extract_index_ivf(high.index).nprobe == 64
    assert low.transform(table)["candidate_ids"] != high.transform(table)["candidate_ids"]
    hnsw = faiss.read_index(str(indexes["hnsw"]))
    inner = faiss.downcast_index(hnsw.index) if hasattr(hnsw, "index") else faiss.downcast_index(hnsw)
    ef_before = inner.hnsw.efSearch
    op = QueryFaiss(hnsw, topk=10, ef_search=ef_before + 17)
    assert inner.hnsw.efSearch == ef_before
    assert op.transform(table)["candidate_ids"].num_rows == 8
