"""Shared fixtures: the demo graph and one server per module on a combined repository."""

from __future__ import annotations

import pytest

from funnel_triton import TritonServer
from funnel_testing import combined_repository, demo_ensemble

#: model names in the combined repository
EXECUTOR = "funnel"
ENSEMBLE = "funnel_ens"


@pytest.fixture(scope="module")
def ensemble():
    return demo_ensemble()


@pytest.fixture(scope="module")
def repository(ensemble, tmp_path_factory):
    """Both modes in one repository: the executor model ``funnel`` (dynamic batching with a
    queue delay, so concurrent requests share execute() calls) and the ensemble ``funnel_ens``."""
    return combined_repository(tmp_path_factory.mktemp("repos") / "repo", {
        "exec": lambda d: ensemble.export(d, name=EXECUTOR, max_queue_delay_us=20000),
        "ens": lambda d: ensemble.export(d, mode="ensemble", name=ENSEMBLE),
    })


@pytest.fixture(scope="module")
def server(repository):
    with TritonServer(repository, timeout=120) as srv:
        yield srv
