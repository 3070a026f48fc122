"""Entry point module (group ``funnel.plugins``, name ``triton``): adds ``funnel serve`` and
``funnel infer``. The plugin registers no operators; tritonclient loads only when a command runs."""

from __future__ import annotations

from funnel.hookspecs import hookimpl


@hookimpl
def register_commands(cli: object) -> None:
    """Add ``funnel serve`` and ``funnel infer`` to ``cli``."""
    from funnel_triton.cli import register  # noqa: PLC0415 - keep plugin discovery cheap

    register(cli)  # type: ignore[arg-type]
