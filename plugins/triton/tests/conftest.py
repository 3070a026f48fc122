"""Shared fixtures of the funnel-triton tests: the demo graph, and the funnel CLI with this
plugin's commands (what ``funnel`` has at start when funnel-triton is installed)."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from funnel_testing import cli_with_commands, demo_ensemble

COMMANDS = ("serve", "infer")


@pytest.fixture(scope="module")
def ensemble():
    return demo_ensemble()


@pytest.fixture
def funnel_cli() -> Iterator[click.Group]:
    """``funnel.cli.cli`` with ``serve`` and ``infer`` added by this plugin's hook; removed afterwards."""
    from funnel_triton import plugin  # noqa: PLC0415

    with cli_with_commands(plugin, COMMANDS) as cli:
        yield cli
