"""Ensemble mode on a full Triton: PredictPyTorch as a native ``pytorch_libtorch`` model (export only).

The embedded server (nvidia-pytriton) has no libtorch backend, so nothing here can be
served by it; the files are for a Triton build that has one (NGC containers). What is
written:

- ``<version>/model.pt``: a TorchScript module that takes one ``Dict[str, Tensor]`` keyed
  by funnel's wire tensor names (``<col>``, ``<col>__values``, ``<col>__offsets``; the
  libtorch backend's dictionary-input mode) and returns ``OUTPUT__0``, ``OUTPUT__1``, ... in
  funnel's column order. It wraps the model with what PredictPyTorch does around it: lossless
  dtypes, a ``(B, 1)`` output squeezed, and top-k (+ exclusion of the session's items +
  id decoding) as values/offsets outputs. It is traced, then checked against the operator
  on a batch of another size.
- ``config.pbtxt``: ``platform: "pytorch_libtorch"``, ``max_batch_size: 0``, each tensor with
  funnel's leading request dimension of 1 and a ``reshape`` that removes it (as the
  TensorFlow plugin's native models do); ragged inputs as values ``[1, -1]`` + offsets
  ``[1, -1]`` INT64.

Models fed padded lists are not written natively (the padding is data-dependent indexing
that tracing would freeze); ``native_triton_model()`` returns None for them and for
torch.export programs (Triton's ``torch_aoti`` platform is beta and batch-1 only), so
ensemble mode serves them with funnel's Python runner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from funnel.errors import ExportError
from funnel.operator import NativeTritonModel
from funnel.schema import Schema

__all__ = ["native_model", "write_native_model", "write_libtorch_model", "served_module", "libtorch_config"]

_TRITON = {"bool": "BOOL", "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "uint8": "UINT8",
           "float16": "FP16", "float32": "FP32", "float64": "FP64"}


def _eligible(op: Any) -> str | None:
    """Why ``op`` cannot be a native libtorch model (None when it can)."""
    if op.format not in ("torchscript", "module") or (op.format == "module" and op.export_format != "torchscript"):
        return "it is a torch.export program (Triton's torch_aoti platform is beta and batch-1 only)"
    if any(s["kind"] == "padded" for s in op.inputs):
        return "it pads list inputs to a fixed length (served by funnel's Python runner instead)"
    if op._model is None:
        return "no model is loaded"
    return None


def _output_columns(op: Any) -> list[tuple[str, str, list[int]]]:
    """(tensor name, Triton dtype, per-row dims without the request dim) for each output tensor."""
    out: list[tuple[str, str, list[int]]] = []
    if op.top_k is not None:
        names = [("item_id_scores", "FP32"), ("item_ids", "INT64")]
        for col, dt in names:
            out.append((col + "__values", dt, [-1]))
            out.append((col + "__offsets", "INT64", [-1]))
        return out
    for o in op.outputs:
        dims = list(o["shape"][1:])
        dims = [] if dims == [1] else dims
        out.append((o["name"], _TRITON[o["dtype"]], [-1, *(-1 if d is None else int(d) for d in dims)]))
    return out


def _input_tensors(op: Any, schema: Schema) -> list[tuple[str, str, list[int]]]:
    out: list[tuple[str, str, list[int]]] = []
    for spec in op.inputs:
        col = schema[spec["column"]]
        dtype = spec["dtype"] or col.dtype
        if spec["kind"] == "values":
            out.append((spec["column"] + "__values", _TRITON[dtype], [-1, *[-1 if d is None else d for d in col.dims[1:]]]))
        elif spec["kind"] == "offsets":
            out.append((spec["column"] + "__offsets", "INT64", [-1]))
        else:
            out.append((spec["column"], _TRITON[dtype], [-1, *[-1 if d is None else d for d in col.dims]]))
    if op.exclude_seen:
        item = op.item_id_column
        for name, dt in ((item + "__values", _TRITON[schema[item].dtype]), (item + "__offsets", "INT64")):
            if name not in {t[0] for t in out}:
                out.append((name, dt, [-1]))
    return out


def native_model(op: Any) -> NativeTritonModel | None:
    """The native model funnel's ensemble exporter wires in, for models without list inputs or
    outputs (the exporter's native path carries dense tensors); None otherwise."""
    if _eligible(op) is not None or op.top_k is not None or not op.rowwise:
        return None
    names = [o["name"] for o in op.outputs]
    return NativeTritonModel(
        platform="pytorch_libtorch",
        backend="pytorch",
        artifact="model.pt",
        inputs={c: f"INPUT__{i}" for i, c in enumerate(op.columns)},
        outputs={n: f"OUTPUT__{i}" for i, n in enumerate(names)},
    )


def write_native_model(op: Any, version_dir: Path) -> None:
    """``version_dir/model.pt`` for the exporter's native path (dense inputs, positional tensors)."""
    torch = _torch()
    module = served_module(op, None, positional=True)
    version_dir.mkdir(parents=True, exist_ok=True)
    module.save(str(version_dir / "model.pt"))
    del torch


def _torch() -> Any:
    import torch  # noqa: PLC0415

    return torch


def served_module(op: Any, schema: Schema | None, positional: bool = False) -> Any:
    """The traced TorchScript module a libtorch backend runs (see the module docstring)."""
    torch = _torch()
    why = _eligible(op)
    if why is not None:
        raise ExportError(f"{op.label}: cannot be a native pytorch_libtorch model: {why}")
    plan = [dict(s) for s in op.inputs]
    top_k, exclude, item = op.top_k, op.exclude_seen, op.item_id_column
    mapping = None if op._mapping_np is None else torch.from_numpy(op._mapping_np.copy())
    outputs = [dict(o) for o in op.outputs]
    call_dict = op.call == "dict"
    model = op._model

    def squeeze(t: Any, spec: dict[str, Any]) -> Any:
        return t[:, 0] if list(spec["shape"][1:]) == [1] else t

    class Served(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            if mapping is not None:
                self.register_buffer("mapping", mapping)

        def run(self, inputs: dict[str, Any]) -> tuple[Any, ...]:
            feeds = {}
            for spec in plan:
                wire = spec["column"] + ("__" + spec["kind"] if spec["kind"] in ("values", "offsets") else "")
                t = inputs[wire]
                if spec["dtype"]:
                    t = t.to(getattr(torch, spec["dtype"]))
                shape = spec["shape"]
                if shape is not None and len(shape) == 2 and shape[1] == 1 and spec["kind"] == "dense":
                    t = t.reshape(-1, 1)
                feeds[spec["name"]] = t
            result = self.model(feeds) if call_dict else self.model(*[feeds[s["name"]] for s in plan])
            flat = op._flatten(result)
            if top_k is None:
                return tuple(squeeze(t, spec) for t, spec in zip(flat, outputs, strict=True))
            scores = flat[0].float()
            if exclude:
                ids = inputs[item + "__values"].to(torch.int64)
                off = inputs[item + "__offsets"].to(torch.int64)
                lengths = off[1:] - off[:-1]
                rows = torch.cumsum(torch.ones_like(lengths), 0) - 1
                row_ids = torch.repeat_interleave(rows, lengths)
                keep = (ids >= 0) & (ids < scores.shape[1])
                scores = scores.index_put((row_ids[keep], ids[keep]), torch.tensor(float("-inf")))
            top_scores, top_ids = torch.topk(scores, top_k, dim=1)
            if mapping is not None:
                top_ids = self.mapping[top_ids]
            counts = torch.full_like(top_ids[:, 0], top_k, dtype=torch.int64)
            offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(counts, 0)])
            return top_scores.reshape(-1), offsets, top_ids.reshape(-1).to(torch.int64), offsets

        def forward(self, inputs: dict[str, Any]) -> tuple[Any, ...]:
            return self.run(inputs)

    class ServedPositional(Served):
        def forward(self, *args: Any) -> tuple[Any, ...]:  # type: ignore[override]
            return self.run(dict(zip(op.columns, args, strict=True)))

    wrapper = (ServedPositional if positional else Served)().eval()

    def wire(table: Any) -> dict[str, Any]:
        from funnel.table import Ragged  # noqa: PLC0415

        out: dict[str, Any] = {}
        for name, col in table.items():
            if isinstance(col, Ragged):
                out[name + "__values"] = torch.as_tensor(np.asarray(col.values))
                out[name + "__offsets"] = torch.as_tensor(np.asarray(col.offsets, dtype=np.int64))
            else:
                out[name] = torch.as_tensor(np.asarray(col))
        return out

    example = op._example_table(3, seed=4)
    if exclude and item not in example:
        raise ExportError(f"{op.label}: item_id_column {item!r} is not among the model's input columns")
    args = tuple(wire(example)[c] for c in op.columns) if positional else (wire(example),)
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, args, strict=False, check_trace=False)
    # the traced module must compute what the operator computes, on a batch of another size
    check = op._example_table(6, seed=5)
    want = op.transform(check)
    check_args = tuple(wire(check)[c] for c in op.columns) if positional else (wire(check),)
    with torch.inference_mode():
        got = [t.numpy() for t in traced(*check_args)]
    expected: list[Any] = []
    for name in want.column_names:
        col = want[name]
        expected += [np.asarray(col.values), np.asarray(col.offsets)] if hasattr(col, "offsets") else [np.asarray(col)]
    for g, w in zip(got, expected, strict=True):
        if g.shape != w.shape or not np.allclose(g, w, rtol=1e-4, atol=1e-5):
            raise ExportError(
                f"{op.label}: the traced pytorch_libtorch module computes other results than the operator on a "
                "batch of another size (the model has shape-dependent Python code that tracing froze); export the "
                "graph with native_backends=False"
            )
    return traced


def libtorch_config(op: Any, schema: Schema, name: str) -> str:
    """``config.pbtxt`` of the native model (tensor names/dims/dtypes; see the module docstring)."""
    def block(kind: str, tensors: list[tuple[str, str, list[int]]]) -> str:
        entries = []
        for tensor, dtype, dims in tensors:
            shown = ", ".join(str(d) for d in [1, *dims])
            reshape = ", ".join(str(d) for d in dims)
            entries.append(
                f"  {{\n    name: \"{tensor}\"\n    data_type: TYPE_{dtype}\n    dims: [ {shown} ]\n"
                f"    reshape: {{ shape: [ {reshape} ] }}\n  }}"
            )
        return f"{kind} [\n" + ",\n".join(entries) + "\n]\n"

    outs = _output_columns(op)
    outputs = [(f"OUTPUT__{i}", dt, dims) for i, (_, dt, dims) in enumerate(outs)]
    text = f"name: \"{name}\"\nplatform: \"pytorch_libtorch\"\nbackend: \"pytorch\"\nmax_batch_size: 0\n"
    text += block("input", _input_tensors(op, schema)) + block("output", outputs)
    device = "KIND_GPU" if str(op.device).startswith("cuda") or op.device == "instance" else "KIND_CPU"
    text += f"instance_group [\n  {{\n    count: 1\n    kind: {device}\n  }}\n]\n"
    mapping = ", ".join(f"{t} -> {n}" for (n, _, _), (t, _, _) in zip(outs, outputs, strict=True))
    text += f"# outputs: {mapping}\n"
    return text


def write_libtorch_model(op: Any, input_schema: Schema, model_dir: str | Path, name: str | None = None,
                         version: int = 1) -> Path:
    """Write a complete ``pytorch_libtorch`` model directory for ``op`` reading ``input_schema``.

    ``model_dir/config.pbtxt`` + ``model_dir/<version>/model.pt``. Ragged columns are values +
    offsets tensors; with ``top_k`` the outputs are ``item_id_scores``/``item_ids`` as
    values/offsets pairs (``OUTPUT__0..3``; the config lists which is which). Returns ``model_dir``.
    """
    model_dir = Path(model_dir)
    name = name or model_dir.name
    module = served_module(op, input_schema)
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    module.save(str(model_dir / str(version) / "model.pt"))
    (model_dir / "config.pbtxt").write_text(libtorch_config(op, input_schema, name))
    return model_dir
