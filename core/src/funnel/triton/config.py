"""config.pbtxt writing (protobuf text format, deterministic) and checking against a loaded graph."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from funnel.errors import ExportError
from funnel.schema import Schema
from funnel.triton.wire import REQUEST, TensorSpec, tensor_specs

__all__ = ["tensor_block", "python_model_config", "parameters_block", "check_model_config"]


def _q(text: str) -> str:
    return json.dumps(text)


def _list(dims: Sequence[int]) -> str:
    return f"[ {', '.join(str(d) for d in dims)} ]"


def tensor_block(kind: str, specs: Sequence[TensorSpec], ragged_batch: bool = False,
                 reshape: Mapping[str, Sequence[int]] | None = None, batched: bool = True) -> str:
    """``input [...]`` / ``output [...]`` entries; ``batched=False`` declares the leading request dimension 1."""
    entries = []
    for s in specs:
        parts = [f"name: {_q(s.name)}", f"data_type: TYPE_{'STRING' if s.dtype == 'BYTES' else s.dtype}",
                 f"dims: {_list(s.dims if batched else (1, *s.dims))}"]
        if reshape and s.name in reshape:
            parts.append(f"reshape: {{ shape: {_list(reshape[s.name])} }}")
        if ragged_batch and kind == "input":
            parts.append("allow_ragged_batch: true")
        entries.append("  {\n    " + "\n    ".join(parts) + "\n  }")
    return f"{kind} [\n" + ",\n".join(entries) + "\n]\n"


def parameters_block(params: Mapping[str, str]) -> str:
    """``parameters`` entries (string values), sorted by key."""
    return "".join(
        f"parameters {{\n  key: {_q(k)}\n  value: {{ string_value: {_q(str(v))} }}\n}}\n"
        for k, v in sorted(params.items())
    )


def python_model_config(
    name: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], max_batch_size: int,
    dynamic_batching: bool, instance_kind: str, instance_count: int, parameters: Mapping[str, str] | None = None,
    max_queue_delay_us: int = 0,
) -> str:
    """A Python-backend model's config.pbtxt (``instance_kind`` "cpu" or "gpu")."""
    batched = max_batch_size > 0
    text = f"name: {_q(name)}\nbackend: \"python\"\nmax_batch_size: {int(max_batch_size)}\n"
    if dynamic_batching and batched:
        text += f"dynamic_batching {{\n  max_queue_delay_microseconds: {int(max_queue_delay_us)}\n}}\n"
    text += tensor_block("input", inputs, ragged_batch=batched, batched=batched)
    text += tensor_block("output", outputs, batched=batched)
    kind = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}[instance_kind]
    text += f"instance_group [\n  {{\n    count: {int(instance_count)}\n    kind: {kind}\n  }}\n]\n"
    return text + parameters_block(parameters or {})


def check_model_config(model_config: Mapping[str, Any], input_schema: Schema, output_schema: Schema,
                       form: str = REQUEST, where: str = "config.pbtxt") -> None:
    """Check a served model's graph against its config.pbtxt (JSON, as ``initialize`` gets it): every
    tensor, its data type and dims; ExportError names a tensor the config does not promise."""
    batched = int(model_config.get("max_batch_size", 0) or 0) > 0
    for kind, schema in (("input", input_schema), ("output", output_schema)):
        declared = {
            str(e.get("name")): (str(e.get("data_type", "")).removeprefix("TYPE_").replace("STRING", "BYTES"),
                                 tuple(int(d) for d in e.get("dims", [])))
            for e in model_config.get(kind) or []
        }
        wanted = {s.name: (s.dtype, s.dims if batched else (1, *s.dims)) for s in tensor_specs(schema, form=form)}
        missing = sorted(set(wanted) - set(declared))
        extra = sorted(set(declared) - set(wanted))
        if missing or extra:
            raise ExportError(f"{where}: the graph's {kind} tensors {sorted(wanted)} do not match the config's "
                              f"{sorted(declared)} (missing from the config: {missing}; not produced by the graph: "
                              f"{extra}); export the graph again")
        for name, (dtype, dims) in wanted.items():
            have_dtype, have_dims = declared[name]
            if have_dtype != dtype or len(have_dims) != len(dims) or any(
                h != w and -1 not in (h, w) for h, w in zip(have_dims, dims, strict=True)
            ):
                raise ExportError(f"{where}: {kind} tensor {name!r} is {dtype} {list(dims)} in the graph but "
                                  f"{have_dtype} {list(have_dims)} in the config; the graph file and config.pbtxt "
                                  "disagree (hand-edited?). Export the graph again")
