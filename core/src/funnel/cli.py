"""The ``funnel`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from funnel import registry
from funnel.errors import FunnelError


#: commands a first-party plugin adds → the distribution to install when it is missing
PLUGIN_COMMANDS = {"serve": "funnel-triton", "infer": "funnel-triton", "score": "funnel-scale",
                   "repo": "funnel-scale", "deploy": "funnel-scale", "faiss": "funnel-faiss",
                   "feast": "funnel-feast", "tf": "funnel-tensorflow", "torch": "funnel-torch",
                   "workflow": "funnel-workflow"}


class _Group(click.Group):
    """Turns funnel's own errors into a one-line ``Error: ...`` instead of a traceback, and
    names the plugin to install for a command a first-party plugin provides."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and args[0] in PLUGIN_COMMANDS:
            dist = PLUGIN_COMMANDS[args[0]]
            raise click.UsageError(f"'funnel {args[0]}' is a command of the plugin {dist}, which is not installed "
                                   f"(or not loaded): pip install {dist}", ctx)
        return super().resolve_command(ctx, args)

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

    from funnel.files import find_graph_json  # noqa: PLC0415
    from funnel.render import render_dot, to_dot  # noqa: PLC0415

    graph_json = find_graph_json(source)
    data = msgspec.json.decode(graph_json.read_bytes())
    target = output or str(Path(source if Path(source).is_dir() else graph_json.parent) / "graph.svg")
    path = render_dot(to_dot(data["graph"]), target)
    click.echo(str(path))


def _add_plugin_commands() -> None:
    """Each plugin's register_commands runs on its own: one that raises is reported (here and
    in `funnel plugins`) as that plugin's error, and the other plugins' commands still load."""
    try:
        failures = registry.call_each("register_commands", lambda name: {"cli": cli})
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the CLI down
        failures = {"?": f"plugins could not be loaded: {type(exc).__name__}: {exc}"}
    for message in failures.values():
        click.echo(f"warning: {message}", err=True)


def main() -> None:
    """Console-script entry point."""
    _add_plugin_commands()
    cli(prog_name="funnel")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
