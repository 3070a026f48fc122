"""Shared fixtures: the demo graph and its exported, served repositories (one server per module)."""

from __future__ import annotations

import pytest

from funnel.triton.testing import demo_ensemble


@pytest.fixture(scope="module")
def ensemble():
    return demo_ensemble()
