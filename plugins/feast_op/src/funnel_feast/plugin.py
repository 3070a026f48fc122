"""Entry point module (group ``funnel.plugins``, name ``feast``): registers QueryFeast and ``funnel feast``."""

from __future__ import annotations

from collections.abc import Callable

from funnel.hookspecs import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register ``feast.QueryFeast``."""
    from funnel_feast.query import QueryFeast  # noqa: PLC0415 - feast is imported lazily

    register(QueryFeast)


@hookimpl
def register_commands(cli: object) -> None:
    """Add ``funnel feast schema`` (feast is imported when it runs)."""
    from funnel_feast.cli import feast_group  # noqa: PLC0415

    cli.add_command(feast_group)  # type: ignore[attr-defined]
