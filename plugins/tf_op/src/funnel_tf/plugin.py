"""Entry point of the ``tf`` plugin (group ``funnel.plugins``): registers PredictTensorflow."""

from __future__ import annotations

from collections.abc import Callable

from funnel.hookspecs import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register ``tf.PredictTensorflow`` (TensorFlow itself is imported only at model load)."""
    from funnel_tf.predict import PredictTensorflow  # noqa: PLC0415

    register(PredictTensorflow)
