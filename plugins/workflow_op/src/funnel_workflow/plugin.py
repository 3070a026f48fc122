"""Entry point module (group ``funnel.plugins``, name ``workflow``): operators and ``funnel workflow``."""

from __future__ import annotations

from collections.abc import Callable

from funnel.hookspecs import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register every built-in workflow op as ``workflow.<Name>`` and ``workflow.TransformWorkflow``."""
    from funnel_workflow.ops import BUILTIN  # noqa: PLC0415 - keep plugin discovery cheap
    from funnel_workflow.serving import TransformWorkflow  # noqa: PLC0415

    for cls in BUILTIN:
        register(cls)
    register(TransformWorkflow)


@hookimpl
def register_commands(cli: object) -> None:
    """Add ``funnel workflow info`` and ``funnel workflow transform``."""
    from funnel_workflow.cli import workflow_group  # noqa: PLC0415

    cli.add_command(workflow_group)  # type: ignore[attr-defined]
