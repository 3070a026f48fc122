"""The module named by the ``sampling`` entry point in the ``funnel.plugins`` group."""

from __future__ import annotations

from collections.abc import Callable

from funnel import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register ``sampling.SoftmaxSampling`` and ``sampling.TopK``."""
    from funnel_sampling.ops import SoftmaxSampling, TopK  # noqa: PLC0415

    register(SoftmaxSampling)
    register(TopK)
