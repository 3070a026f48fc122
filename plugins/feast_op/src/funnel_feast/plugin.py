"""Entry point module (group ``funnel.plugins``, name ``feast``): registers QueryFeast."""

from __future__ import annotations

from collections.abc import Callable

from funnel.hookspecs import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register ``feast.QueryFeast``."""
    from funnel_feast.query import QueryFeast  # noqa: PLC0415 - feast is imported lazily

    register(QueryFeast)
