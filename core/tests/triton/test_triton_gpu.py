"""KIND_GPU executor model with cupy tables (runs on a GPU machine; skipped without a GPU)."""

from __future__ import annotations

import pytest
from funnel_testing import has_cuda_gpu


pytestmark = pytest.mark.skipif(not has_cuda_gpu(), reason="needs an NVIDIA GPU with cupy")


def test_kind_gpu_executor_equals_transform(ensemble, tmp_path):
    from funnel_triton import TritonServer
    from funnel_testing import demo_request

    repo = ensemble.export(tmp_path / "repo", instance_kind="gpu")
    assert "KIND_GPU" in (repo / "funnel" / "config.pbtxt").read_text()
    with TritonServer(repo, timeout=180) as server:
        for rows in (1, 7):
            request = demo_request(rows, seed=rows)
            assert server.infer(request) == ensemble.transform(request)
