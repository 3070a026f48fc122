"""Entry point module (group ``funnel.plugins``, name ``faiss``): registers QueryFaiss."""

from __future__ import annotations

from collections.abc import Callable

from funnel.hookspecs import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register :class:`funnel_faiss.QueryFaiss` as ``faiss.QueryFaiss``."""
    from funnel_faiss.query import QueryFaiss  # noqa: PLC0415 - keep plugin discovery cheap

    register(QueryFaiss)
