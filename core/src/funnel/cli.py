"""The ``funnel`` command line."""

from __future__ import annotations

import json
import sys

import click

from funnel import registry


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="funnel", prog_name="funnel")
def cli() -> None:
    """funnel: compose, run and serve multi-stage recommender pipelines on Triton."""


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def plugins_cmd(as_json: bool) -> None:
    """List installed plugins, their versions and the operators each registers."""
    infos = registry.plugins()
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    for info in infos:
        version = f" {info.version}" if info.version else ""
        dist = f" ({info.distribution})" if info.distribution and info.distribution != info.name else ""
        click.echo(f"{info.name}{version}{dist}")
        if info.error:
            click.echo(f"  ERROR: {info.error}")
        for op in info.operators:
            click.echo(f"  {op}")


def _add_plugin_commands() -> None:
    try:
        registry.get_plugin_manager().hook.register_commands(cli=cli)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the CLI down
        click.echo(f"warning: a plugin failed to add commands: {exc}", err=True)


def main() -> None:
    """Console-script entry point."""
    _add_plugin_commands()
    cli(prog_name="funnel")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
