"""The ``funnel`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from funnel import registry
from funnel.errors import FunnelError


class _Group(click.Group):
    """Turns funnel's own errors into a one-line ``Error: ...`` instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except FunnelError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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


@cli.command("graph")
@click.argument("source", type=click.Path(exists=True))
@click.option("-o", "--output", default=None, help="Picture to write (.svg, .png, .pdf or .dot). Default: graph.svg next to SOURCE.")
def graph_cmd(source: str, output: str | None) -> None:
    """Draw the graph of a saved graph directory or an exported Triton repository.

    SOURCE is a directory written by Ensemble.save/Ensemble.export (or a funnel-graph.json
    file). No plugin needs to be installed to draw it.
    """
    import msgspec  # noqa: PLC0415

    from funnel.render import find_graph_json, render_dot, to_dot  # noqa: PLC0415

    graph_json = find_graph_json(source)
    data = msgspec.json.decode(graph_json.read_bytes())
    target = output or str(Path(source if Path(source).is_dir() else graph_json.parent) / "graph.svg")
    path = render_dot(to_dot(data["graph"]), target)
    click.echo(str(path))


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
