"""Hook specifications: what a funnel plugin can implement.

Plugins implement hooks with ``@funnel.hookimpl`` in a module named by an entry point in
the ``funnel.plugins`` group. Every hook is documented in ``docs/plugins.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from funnel.operator import Operator

hookspec = pluggy.HookspecMarker("funnel")
hookimpl = pluggy.HookimplMarker("funnel")


@hookspec
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Call ``register(OperatorClass)`` for each operator; its ``type_name`` is what exports store."""


@hookspec
def register_commands(cli: object) -> None:
    """Called when the ``funnel`` CLI starts; add click commands with ``cli.add_command(cmd)``."""
