"""Entry point of the ``torch`` plugin (group ``funnel.plugins``): registers PredictPyTorch and ``funnel torch``."""

from __future__ import annotations

from collections.abc import Callable

from funnel.hookspecs import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register ``torch.PredictPyTorch`` (torch itself is imported only at model load)."""
    from funnel_torch.predict import PredictPyTorch  # noqa: PLC0415

    register(PredictPyTorch)


@hookimpl
def register_commands(cli: object) -> None:
    """Add ``funnel torch info`` (torch is imported when it runs)."""
    from funnel_torch.cli import torch_group  # noqa: PLC0415

    cli.add_command(torch_group)  # type: ignore[attr-defined]
