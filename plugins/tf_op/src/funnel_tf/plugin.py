"""Entry point of the ``tf`` plugin (group ``funnel.plugins``): registers PredictTensorflow and ``funnel tf``."""

from __future__ import annotations

from collections.abc import Callable

from funnel.hookspecs import hookimpl
from funnel.operator import Operator


@hookimpl
def register_operators(register: Callable[[type[Operator]], None]) -> None:
    """Register ``tf.PredictTensorflow`` (TensorFlow itself is imported only at model load)."""
    from funnel_tf.predict import PredictTensorflow  # noqa: PLC0415

    register(PredictTensorflow)


@hookimpl
def register_commands(cli: object) -> None:
    """Add ``funnel tf schema`` (TensorFlow is imported when it runs)."""
    from funnel_tf.cli import tf_group  # noqa: PLC0415

    cli.add_command(tf_group)  # type: ignore[attr-defined]
