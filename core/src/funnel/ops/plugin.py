"""Core's own plugin module: registers the built-in operators like any plugin does."""

from __future__ import annotations

from collections.abc import Callable

from funnel.hookspecs import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register UnrollFeatures, FilterCandidates, the column operators Cast/AsType/Select/Rename
    and the unknown-id operators KnownIds/Fallback."""
    from funnel.ops import (  # noqa: PLC0415
        AsType,
        Cast,
        Fallback,
        FilterCandidates,
        KnownIds,
        Rename,
        Select,
        UnrollFeatures,
    )

    for op in (UnrollFeatures, FilterCandidates, Cast, AsType, Select, Rename, KnownIds, Fallback):
        register(op)
