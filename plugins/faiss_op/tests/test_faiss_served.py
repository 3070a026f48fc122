"""QueryFaiss served by the embedded Triton server (executor mode) equals in-process."""

from __future__ import annotations

import pytest

from funnel import ColumnSchema, Ensemble, Schema, Table
from funnel_triton import TritonServer
from funnel_faiss import QueryFaiss, build_index


@pytest.fixture(scope="module")
def ensemble(data):
    index = build_index(data["items"][:5000], data["ids"][:5000], kind="hnsw", metric="l2")
    op = QueryFaiss(index, topk=50, include_distances=True, ef_search=64)
    return Ensemble(["query"] >> op, Schema([ColumnSchema("query", "float32", dims=(32,))]))


@pytest.fixture(scope="module")
def server(ensemble, tmp_path_factory):
    repo = ensemble.export(tmp_path_factory.mktemp("faiss_served") / "repo")
    assert len(list(repo.glob("funnel/**/index.faiss"))) == 1  # the index travels with the model
    with TritonServer(repo, timeout=120) as srv:
        yield srv


@pytest.mark.parametrize("rows", [1, 16])
def test_served_equals_in_process(server, ensemble, data, rows):
    request = Table({"query": data["queries"][:rows]})
    expected = ensemble.transform(request)
    got = server.infer(request, model="funnel")
    assert got.column_names == ["candidate_ids", "candidate_distances"]
    assert got["candidate_ids"].to_lists() == expected["candidate_ids"].to_lists()
    assert got == expected
