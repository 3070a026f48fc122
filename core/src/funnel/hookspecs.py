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
    """Called once when the registry loads; call ``register(OperatorClass)`` for each operator.

    The class's ``type_name`` (e.g. ``"faiss.QueryFaiss"``) is the stable name exports use.
    Every implementation is called; registering a name twice is an error.
    """


@hookspec
def register_commands(cli: object) -> None:
    """Called when the ``funnel`` CLI starts; add click commands with ``cli.add_command(cmd)``."""
