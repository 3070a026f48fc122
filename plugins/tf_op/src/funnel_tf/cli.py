"""``funnel tf schema``: the columns PredictTensorflow derives from a SavedModel signature.

TensorFlow is imported inside the command, so ``funnel --help`` stays fast.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

__all__ = ["tf_group", "signature_columns"]


def signature_columns(path: str, signature: str = "serving_default") -> dict[str, Any]:
    """The input and output columns of ``PredictTensorflow(path, signature)``, as plain data.

    Inputs are the signature's per-row specs; outputs are what ``compute_output_schema``
    returns for those inputs (a ``(B, 1)`` output becomes one value per row, dims ``[]``).
    """
    from funnel.schema import ColumnSchema, Schema  # noqa: PLC0415

    from funnel_tf.predict import PredictTensorflow  # noqa: PLC0415

    # no TF start-up chatter on stderr; oneDNN's notice ignores TF_CPP_MIN_LOG_LEVEL, and
    # this process only reads signatures (never computes), so turning oneDNN off costs nothing
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    op = PredictTensorflow(path, signature=signature)
    inputs = Schema(
        ColumnSchema(s["name"], s["dtype"], dims=s["shape"][1:], is_list=False) for s in op.inputs
    )
    outputs = op.compute_output_schema(inputs)

    def rows(schema: Schema) -> list[dict[str, Any]]:
        return [{"name": c.name, "dtype": c.dtype, "dims": list(c.dims)} for c in schema]

    return {"path": str(path), "signature": signature, "inputs": rows(inputs), "outputs": rows(outputs)}


def _dims(dims: list[Any]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


@click.group("tf")
def tf_group() -> None:
    """TensorFlow models for PredictTensorflow."""


@tf_group.command("schema")
@click.argument("savedmodel", type=click.Path())
@click.option("--signature", default="serving_default", show_default=True, help="Signature to describe.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def schema_cmd(savedmodel: str, signature: str, as_json: bool) -> None:
    """Print the input and output columns PredictTensorflow derives from SAVEDMODEL.

    SAVEDMODEL is a SavedModel directory (Keras model.export(), tf.saved_model.save) or a
    .keras/.h5 file. Columns are name, dtype and per-row dims (without the batch
    dimension; ? = any length). A (B, 1) output is listed as one value per row, as the
    graph sees it.
    """
    info = signature_columns(savedmodel, signature)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['path']} (signature {info['signature']!r})")
    for part in ("inputs", "outputs"):
        click.echo(f"{part}:")
        for col in info[part]:
            click.echo(f"  {col['name']:<24} {col['dtype']:<8} {_dims(col['dims'])}")
