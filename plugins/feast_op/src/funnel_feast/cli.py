"""``funnel feast schema``: the columns ``QueryFeast.from_feature_view`` would output.

Feast is imported inside the command, so ``funnel --help`` stays fast.
"""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["feast_group", "view_columns"]


def view_columns(repo: str, view: str, prefix: str | None = None, include_id: bool = False) -> dict[str, Any]:
    """The output columns of ``QueryFeast.from_feature_view(repo, view, <join key>, prefix, include_id)``.

    The columns are those for one id per request row (the view's join key); for a list of
    ids per row every column becomes a list with the ids' offsets (list features are refused
    there). Reads the registry only; nothing is written.
    """
    from funnel.errors import FunnelError  # noqa: PLC0415
    from funnel.schema import ColumnSchema, Schema  # noqa: PLC0415

    from funnel_feast.query import QueryFeast  # noqa: PLC0415

    try:
        op = QueryFeast.from_feature_view(repo, view, "ids", output_prefix=prefix, include_id=include_id)
    except FunnelError:
        raise
    except Exception as exc:  # noqa: BLE001 - feast's own errors (missing repo, unknown view, ...)
        raise click.ClickException(
            f"cannot read feature view {view!r} from the Feast repository {repo!r}: {type(exc).__name__}: {exc}"
        ) from exc
    schema = op.compute_output_schema(Schema([ColumnSchema("ids", op.entity_dtype)]))
    return {
        "repo": str(repo),
        "view": view,
        "entity": op.entity,
        "entity_dtype": op.entity_dtype,
        "columns": [{"name": c.name, "dtype": c.dtype, "is_list": c.is_list} for c in schema],
    }


@click.group("feast")
def feast_group() -> None:
    """Feast feature views for QueryFeast."""


@feast_group.command("schema")
@click.argument("repo", type=click.Path())
@click.argument("view")
@click.option("--prefix", default=None, help="output_prefix: columns are named <prefix>_<feature>.")
@click.option("--include-id", is_flag=True, help="Also list the ids column (include_id=True).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def schema_cmd(repo: str, view: str, prefix: str | None, include_id: bool, as_json: bool) -> None:
    """Print the columns QueryFeast.from_feature_view(REPO, VIEW, ...) would output.

    REPO is the feature repository (the directory holding feature_store.yaml, or that
    file); VIEW a feature view in its registry. Columns are listed for one id per request
    row: name, dtype and whether it is a list. Only the registry is read.
    """
    info = view_columns(repo, view, prefix, include_id)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['view']} (entity {info['entity']}: {info['entity_dtype']})")
    for col in info["columns"]:
        click.echo(f"  {col['name']:<24} {col['dtype']:<8} {'list' if col['is_list'] else ''}".rstrip())
