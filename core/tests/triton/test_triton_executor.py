"""Executor mode on the real embedded Triton server: results equal Ensemble.transform()."""

from __future__ import annotations

import pytest

from funnel.triton import TritonServer
from funnel.triton.testing import demo_request


@pytest.fixture(scope="module")
def server(ensemble, tmp_path_factory):
    repo = ensemble.export(tmp_path_factory.mktemp("exec") / "repo")
    with TritonServer(repo, timeout=120) as srv:
        yield srv


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("rows", [1, 7])
def test_served_equals_transform(server, ensemble, rows, protocol):
    request = demo_request(rows, seed=rows)
    expected = ensemble.transform(request)
    got = server.infer(request, protocol=protocol)
    assert got == expected
