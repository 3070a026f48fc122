"""Core's own plugin module: registers the built-in operators like any plugin does."""

from __future__ import annotations

from collections.abc import Callable

from funnel import ops
from funnel.hookspecs import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register every operator of :mod:`funnel.ops`, in the order of its ``__all__``."""
    for name in ops.__all__:
        register(getattr(ops, name))
