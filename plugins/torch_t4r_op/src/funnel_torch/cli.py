"""``funnel torch info MODEL``: what PredictPyTorch reads from a TorchScript or torch.export file.

torch is imported inside the command, so ``funnel --help`` stays fast.
"""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["torch_group", "model_info"]


def model_info(path: str, max_sequence_length: int | None = None) -> dict[str, Any]:
    """Format, call convention, inputs (tensor, column, how it is fed, dtype, dims) and outputs, as plain data.

    ``None`` in dims is a dynamic dimension (the batch first); ``dtype`` None means the file
    does not record it (scripted or reloaded traced TorchScript): columns are fed as they come.
    """
    from funnel_torch.predict import PredictPyTorch  # noqa: PLC0415

    op = PredictPyTorch(path, max_sequence_length=max_sequence_length)
    inputs = [
        {
            "tensor": s["name"],
            "column": s["column"],
            "fed_as": s["kind"],
            "dtype": s["dtype"],
            "dims": s["shape"],
            **({"length": s["length"]} if s["kind"] == "padded" else {}),
        }
        for s in op.inputs
    ]
    outputs = [{"name": o["name"], "dtype": o["dtype"], "dims": o["shape"]} for o in op.outputs]
    return {"path": str(path), "format": op.format, "call": op.call, "row_wise": op.rowwise,
            "inputs": inputs, "outputs": outputs}


def _dims(dims: list[Any] | None) -> str:
    if dims is None:
        return "(rank unknown)"
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


@click.group("torch")
def torch_group() -> None:
    """PyTorch models for PredictPyTorch."""


@torch_group.command("info")
@click.argument("model", type=click.Path())
@click.option("--max-sequence-length", type=int, default=None,
              help="Fixed padded length for list inputs the model takes as (B, L) tensors.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info_cmd(model: str, max_sequence_length: int | None, as_json: bool) -> None:
    """Print the format, inputs and outputs PredictPyTorch derives from MODEL.

    MODEL is a TorchScript file (.pt, torch.jit.trace/script) or a torch.export program
    (.pt2). Inputs are listed with the column they read and how it is fed (values/offsets
    of a list column, padded to a fixed length, or one value per row); dims include the
    batch dimension (? = dynamic). Outputs come from the program's signature or from one
    call on example inputs.
    """
    from funnel.errors import FunnelError  # noqa: PLC0415

    try:
        info = model_info(model, max_sequence_length)
    except FunnelError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['path']}: {info['format']}, called with {'one dict of tensors' if info['call'] == 'dict' else 'positional tensors'}"
               f"{', row-wise' if info['row_wise'] else ''}")
    click.echo("inputs:")
    for s in info["inputs"]:
        how = {"values": "list values", "offsets": "list offsets", "dense": "per row"}.get(s["fed_as"], "padded")
        if s["fed_as"] == "padded":
            how = f"padded to {s['length']}"
        click.echo(f"  {s['tensor']:<32} {str(s['dtype'] or '?'):<8} {_dims(s['dims']):<16} column {s['column']!r} ({how})")
    click.echo("outputs:")
    for o in info["outputs"]:
        click.echo(f"  {o['name']:<32} {o['dtype']:<8} {_dims(o['dims'])}")
