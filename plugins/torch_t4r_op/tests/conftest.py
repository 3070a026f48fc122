"""Real PyTorch models in real formats (funnel_torch.testing), built once per test session (seconds, CPU)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from funnel_torch.testing import MAX_LEN, N_ITEMS, PaddedSession, Ranker, T4RStandIn, sessions, t4r_inputs

warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)


@pytest.fixture(scope="session")
def t4r_module() -> T4RStandIn:
    torch.manual_seed(0)
    return T4RStandIn().eval()


@pytest.fixture(scope="session")
def t4r_traced(t4r_module: T4RStandIn, tmp_path_factory: pytest.TempPathFactory) -> Path:
    items, cats = sessions(0, 4)
    path = tmp_path_factory.mktemp("t4r") / "t4r_traced.pt"
    with torch.no_grad():
        torch.jit.trace(t4r_module, (t4r_inputs(items, cats),), strict=False).save(str(path))
    return path


@pytest.fixture(scope="session")
def padded_module() -> PaddedSession:
    torch.manual_seed(1)
    return PaddedSession().eval()


@pytest.fixture(scope="session")
def padded_export(padded_module: PaddedSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torch.export program with a dynamic batch and the fixed length MAX_LEN."""
    path = tmp_path_factory.mktemp("padded") / "session.pt2"
    example = torch.randint(1, N_ITEMS, (3, MAX_LEN))
    program = torch.export.export(
        padded_module, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},)
    )
    torch.export.save(program, str(path))
    return path


@pytest.fixture(scope="session")
def ranker_module() -> Ranker:
    torch.manual_seed(2)
    return Ranker().eval()


@pytest.fixture(scope="session")
def ranker_scripted(ranker_module: Ranker, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ranker") / "ranker_scripted.pt"
    torch.jit.script(ranker_module).save(str(path))
    return path


