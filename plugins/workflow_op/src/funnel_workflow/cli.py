"""``funnel workflow ...``: describe a saved workflow, and apply one to data offline."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["workflow_group"]


def _load(path: str, trust_code: bool):  # noqa: ANN202
    from funnel.errors import FunnelError  # noqa: PLC0415
    from funnel_workflow import Workflow  # noqa: PLC0415

    from funnel_workflow.code import UntrustedCodeError  # noqa: PLC0415

    try:
        return Workflow.load(path, trust_code=trust_code or None)
    except UntrustedCodeError as exc:
        raise click.ClickException(f"{exc}. On the command line: read it (funnel workflow info {path}), "
                                   "then pass --trust-code") from exc
    except FunnelError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("workflow")
def workflow_group() -> None:
    """Preprocessing workflows (funnel-workflow): describe one, apply one to data."""


@workflow_group.command("info")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def info_cmd(path: str, as_json: bool) -> None:
    """Describe the saved workflow at PATH: operators, output schema, statistics.

    Reads only data (workflow.json and statistics); no saved code is run.
    """
    file = Path(path) / "workflow.json"
    if not file.is_file():
        raise click.ClickException(f"{file} not found: not a saved funnel workflow directory")
    try:
        doc = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{file} is not valid JSON: {exc}") from exc
    ops = []
    for entry in doc["graph"]["nodes"]:
        if entry["kind"] != "op":
            continue
        info = doc["ops"][str(entry["index"])]
        stats = None
        if "stats" in info:
            sfile = Path(path) / info["stats"] / "stats.json"
            stats = json.loads(sfile.read_text())["stats"] if sfile.is_file() else None
        ops.append({
            "node": entry["index"], "type": entry["op"]["type"], "label": info.get("label"),
            "offline_only": info.get("offline_only", False), "code": "code" in info or _has_code(entry["op"]["config"]),
            "outputs": [c["name"] for c in entry["output_schema"]["columns"]], "stats": _summary(stats),
        })
    out_cols = doc["output_schema"]["columns"]
    if as_json:
        click.echo(json.dumps({"operators": ops, "input_schema": doc["input_schema"], "output_schema": doc["output_schema"],
                               "serving_output_schema": doc.get("serving_output_schema")}, indent=2, default=str))
        return
    click.echo(f"workflow {path}")
    click.echo(f"input columns: {[c['name'] for c in doc['input_schema']['columns']]}")
    click.echo("operators:")
    for op in ops:
        flags = [f for f, on in (("offline-only", op["offline_only"]), ("code", op["code"])) if on]
        click.echo(f"  [{op['node']}] {op['label']} ({op['type']}){' [' + ', '.join(flags) + ']' if flags else ''}"
                   f" -> {op['outputs']}")
        if op["stats"]:
            click.echo(f"      stats: {op['stats']}")
    click.echo("output schema:")
    for c in out_cols:
        props = {k: v for k, v in c.get("properties", {}).items() if k in ("cardinality", "value_count", "domain")}
        click.echo(f"  {c['name']}: {c['dtype']}{' list' if c.get('is_list') else ''} tags={c.get('tags', [])}"
                   f"{' ' + json.dumps(props) if props else ''}")


def _has_code(config: object) -> bool:
    if isinstance(config, dict):
        return "source" in config or "import" in config or any(_has_code(v) for v in config.values())
    return False


def _summary(stats: object) -> str | None:
    if not stats:
        return None
    if isinstance(stats, dict) and "moments" in stats:
        return "; ".join(f"{k}: mean={v['mean']:.4g} std={v['std']:.4g} n={v['count']}" for k, v in stats["moments"].items())
    if isinstance(stats, dict) and "columns" in stats:
        return f"vocabularies of {stats['columns']}"
    return json.dumps(stats, default=str)[:200]


@workflow_group.command("transform")
@click.argument("path", type=click.Path(file_okay=False))
@click.argument("input", type=click.Path())
@click.argument("output", type=click.Path())
@click.option("--trust-code", is_flag=True,
              help="Run code saved in the workflow (lambdas, user operators). Read it first (funnel workflow info).")
def transform_cmd(path: str, input: str, output: str, trust_code: bool) -> None:  # noqa: A002
    """Apply the saved workflow at PATH to INPUT (parquet file/dir or .csv) and write OUTPUT (parquet dir)."""
    from funnel.errors import FunnelError  # noqa: PLC0415
    from funnel_workflow import Dataset  # noqa: PLC0415

    wf = _load(path, trust_code)
    try:
        if input.endswith(".csv"):
            import pandas as pd  # noqa: PLC0415

            if not Path(input).is_file():
                raise click.ClickException(f"input file {input} does not exist")
            data = Dataset(pd.read_csv(input))
        else:
            data = Dataset(input)
        out = wf.transform(data)
        out.to_parquet(output)
    except FunnelError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {out.npartitions} partition(s) to {output}")
