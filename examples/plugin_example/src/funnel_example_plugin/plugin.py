"""Named by the ``example`` entry point in the ``funnel.plugins`` group (see pyproject.toml)."""

from __future__ import annotations

from collections.abc import Callable

from funnel import Operator, hookimpl


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register this plugin's operators with funnel's registry."""
    from funnel_example_plugin.ops import ItemRecency  # noqa: PLC0415 - keep plugin loading cheap

    register(ItemRecency)
