"""Shared fixtures: the demo graph and one server per module on a combined repository."""

from __future__ import annotations

import shutil

import pytest

from funnel.triton import TritonServer
from funnel_testing import demo_ensemble

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
    base = tmp_path_factory.mktemp("repos")
    ensemble.export(base / "exec", name=EXECUTOR, max_queue_delay_us=20000)
    ensemble.export(base / "ens", mode="ensemble", name=ENSEMBLE)
    repo = base / "repo"
    repo.mkdir()
    for src in (base / "exec", base / "ens"):
        for model in src.iterdir():
            if model.is_dir():
                shutil.copytree(model, repo / model.name)
    return repo


@pytest.fixture(scope="module")
def server(repository):
    with TritonServer(repository, timeout=120) as srv:
        yield srv
