"""Core's own plugin module: registers the built-in operators like any plugin does."""

from __future__ import annotations

from collections.abc import Callable

from funnel.hookspecs import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register UnrollFeatures, FilterCandidates and the column operators Cast/AsType/Select/Rename."""
    from funnel.ops import AsType, Cast, FilterCandidates, Rename, Select, UnrollFeatures  # noqa: PLC0415

    for op in (UnrollFeatures, FilterCandidates, Cast, AsType, Select, Rename):
        register(op)
