"""Entry point module (group ``funnel.plugins``, name ``scale``): adds the scale-out commands.

``funnel score`` (Dask), ``funnel repo check|push`` (object storage) and ``funnel deploy
kserve`` (KServe manifests). The plugin registers no operators. Nothing heavy is imported
here: dask, boto3 and kserve load only when a command runs.
"""

from __future__ import annotations

from funnel.hookspecs import hookimpl


@hookimpl
def register_commands(cli: object) -> None:
    """Add ``funnel score``, ``funnel repo check|push`` and ``funnel deploy kserve`` to ``cli``."""
    from funnel_scale.cli import register  # noqa: PLC0415 - keep plugin discovery cheap

    register(cli)  # type: ignore[arg-type]
