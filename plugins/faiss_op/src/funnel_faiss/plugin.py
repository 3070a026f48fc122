"""Entry point module (group ``funnel.plugins``, name ``faiss``): registers QueryFaiss and ``funnel faiss``."""

from __future__ import annotations

from collections.abc import Callable

from funnel.hookspecs import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register :class:`funnel_faiss.QueryFaiss` as ``faiss.QueryFaiss``."""
    from funnel_faiss.query import QueryFaiss  # noqa: PLC0415 - keep plugin discovery cheap

    register(QueryFaiss)


@hookimpl
def register_commands(cli: object) -> None:
    """Add ``funnel faiss build`` and ``funnel faiss info`` (FAISS is imported when they run)."""
    from funnel_faiss.cli import faiss_group  # noqa: PLC0415

    cli.add_command(faiss_group)  # type: ignore[attr-defined]
