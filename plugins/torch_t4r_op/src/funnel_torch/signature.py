"""What a PyTorch model takes and returns, read from the model itself (no call needed).

- TorchScript (``torch.jit.trace``/``script``): ``forward``'s schema gives positional
  argument names; a single ``Dict[str, Tensor]`` argument is read through the string keys
  the graph looks up (``aten::__getitem__`` on that input). Traced graphs also record
  dtypes and ranks.
- ``torch.export`` programs: the input tree spec gives the dict keys (or argument names);
  the placeholders' fake tensors give dtypes and shapes (a symbolic dim is dynamic, an
  integer dim is fixed).
- ``nn.Module``: ``forward``'s Python signature gives names; dtypes come from the schema.

torch is imported by the caller; this module only receives torch objects.
"""

from __future__ import annotations

import inspect
from typing import Any

from funnel.errors import SchemaError

__all__ = ["ModelInput", "torchscript_inputs", "export_inputs", "export_outputs", "module_inputs", "dtype_name"]


class ModelInput(dict):
    """One tensor the model takes: ``name``, ``dtype`` (or None), ``shape`` (None = unknown rank;
    entries None = dynamic)."""

    @property
    def name(self) -> str:
        return self["name"]


def dtype_name(torch_dtype: Any) -> str:
    """``torch.int64`` → ``"int64"``."""
    return str(torch_dtype).replace("torch.", "")


_SCALAR = {"Long": "int64", "Int": "int32", "Float": "float32", "Double": "float64", "Bool": "bool",
           "Half": "float16", "Short": "int16", "Char": "int8", "Byte": "uint8", "BFloat16": "bfloat16"}


def _ts_tensor_type(value: Any) -> tuple[str | None, list[Any] | None]:
    typ = value.type()
    try:
        scalar = typ.scalarType()
    except Exception:  # noqa: BLE001 - not a tensor type
        scalar = None
    try:
        rank = typ.dim()
    except Exception:  # noqa: BLE001
        rank = None
    return (_SCALAR.get(scalar) if scalar else None), (None if rank is None else [None] * rank)


def torchscript_inputs(module: Any, where: str) -> tuple[str, list[ModelInput]]:
    """(call convention ``"dict"`` | ``"args"``, inputs) of a TorchScript module."""
    schema = module.forward.schema
    args = list(schema.arguments)[1:]  # the first argument is the module itself
    graph = module.inlined_graph
    graph_inputs = list(graph.inputs())[1:]
    if len(args) == 1 and str(args[0].type).replace("(", "[").startswith("Dict[str, Tensor]"):
        dict_value = graph_inputs[0]
        found: dict[str, ModelInput] = {}
        for node in graph.nodes():
            if node.kind() != "aten::__getitem__" or node.inputsAt(0).unique() != dict_value.unique():
                continue
            key = node.inputsAt(1).toIValue()
            if not isinstance(key, str) or key in found:
                continue
            dtype, shape = _ts_tensor_type(node.output())
            found[key] = ModelInput(name=key, dtype=dtype, shape=shape)
        if not found:
            raise SchemaError(
                f"PredictPyTorch: the TorchScript model {where} takes a Dict[str, Tensor] but its graph looks "
                "up no constant keys, so its inputs cannot be read from it; pass input_schema=... naming them"
            )
        return "dict", list(found.values())
    inputs = []
    for arg, value in zip(args, graph_inputs, strict=False):
        if not str(arg.type).startswith("Tensor"):
            raise SchemaError(
                f"PredictPyTorch: the TorchScript model {where} takes argument {arg.name!r} of type {arg.type}; "
                "only tensors or one Dict[str, Tensor] are supported"
            )
        dtype, shape = _ts_tensor_type(value)
        inputs.append(ModelInput(name=arg.name, dtype=dtype, shape=shape))
    return "args", inputs


def _children(spec: Any) -> list[Any]:
    children = getattr(spec, "children", None)
    return list(children()) if callable(children) else list(spec.children_specs)


def _fake_shape(val: Any) -> list[Any]:
    return [d if isinstance(d, int) else None for d in val.shape]


def export_inputs(program: Any, where: str) -> tuple[str, list[ModelInput]]:
    """(call convention, inputs) of a ``torch.export`` ExportedProgram."""
    spec = program.call_spec.in_spec
    args_spec, kwargs_spec = _children(spec)
    if kwargs_spec.context:
        raise SchemaError(
            f"PredictPyTorch: the exported program {where} takes keyword inputs {list(kwargs_spec.context)}; "
            "export it with positional tensors or one dict of tensors"
        )
    user = [s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    vals = {n.name: n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"}
    arg_specs = _children(args_spec)
    if len(arg_specs) == 1 and arg_specs[0].type is dict:
        keys = [str(k) for k in arg_specs[0].context]
        if any(_children(c) for c in _children(arg_specs[0])):
            raise SchemaError(f"PredictPyTorch: the exported program {where} takes a nested dict; use a flat dict")
        call = "dict"
    else:
        keys = list(user)
        call = "args"
    if len(keys) != len(user):
        raise SchemaError(
            f"PredictPyTorch: the exported program {where} has {len(user)} tensor inputs for {len(keys)} names; "
            "export it with tensors only"
        )
    inputs = []
    for key, placeholder in zip(keys, user, strict=True):
        val = vals.get(placeholder)
        inputs.append(ModelInput(name=key, dtype=dtype_name(val.dtype), shape=_fake_shape(val)))
    return call, inputs


def export_outputs(program: Any) -> list[dict[str, Any]] | None:
    """Output dtypes/per-row dims of an exported program's flat outputs (None when not tensors)."""
    out_node = next(n for n in program.graph.nodes if n.op == "output")
    vals = [getattr(a, "meta", {}).get("val") for a in out_node.args[0]]
    if any(v is None or not hasattr(v, "dtype") for v in vals):
        return None
    return [{"dtype": dtype_name(v.dtype), "shape": _fake_shape(v)} for v in vals]


def module_inputs(module: Any, names: list[str] | None, where: str) -> tuple[str, list[ModelInput]]:
    """(call convention, inputs) of an in-process ``nn.Module``; a dict argument needs ``names``."""
    params = [
        p for p in inspect.signature(module.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(params) == 1 and _is_dict_annotation(params[0].annotation):
        if not names:
            raise SchemaError(
                f"PredictPyTorch: {where}.forward takes a dict of tensors; its keys cannot be read from Python, "
                "pass input_schema=... (list columns become <name>__values/<name>__offsets, or <name> padded when "
                "max_sequence_length covers them)"
            )
        return "dict", [ModelInput(name=n, dtype=None, shape=None) for n in names]
    return "args", [ModelInput(name=p.name, dtype=None, shape=None) for p in params]


def _is_dict_annotation(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return annotation is dict or "dict" in text.lower() or "Mapping" in text
