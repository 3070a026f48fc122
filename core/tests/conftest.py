from __future__ import annotations

import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def _fixtures_on_path():
    """Make the fixture modules (user-defined operators) importable like a user's own module."""
    sys.path.insert(0, str(FIXTURES))
    yield
    sys.path.remove(str(FIXTURES))


@pytest.fixture(autouse=True)
def _no_installed_plugins(monkeypatch):
    """Core tests never see installed plugins: only core's built-ins and the test operators
    (the funnel-testing plugin, which the core test suite depends on) are loaded."""
    from funnel import registry

    monkeypatch.setenv("FUNNEL_LOAD_PLUGINS", "testing")
    registry.reset()
    yield
    registry.reset()
