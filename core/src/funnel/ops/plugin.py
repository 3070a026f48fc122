"""Core's own plugin module: registers the built-in operators like any plugin does."""

from __future__ import annotations

from collections.abc import Callable

from funnel.hookspecs import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register UnrollFeatures and FilterCandidates."""
    from funnel.ops import FilterCandidates, UnrollFeatures  # noqa: PLC0415

    register(UnrollFeatures)
    register(FilterCandidates)
