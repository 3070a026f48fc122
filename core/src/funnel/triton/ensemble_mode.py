"""Ensemble mode: one Triton model per operator node, wired by a ``platform: "ensemble"`` model.

Select/concat/drop nodes become wiring (which tensor feeds which model input); every operator node
becomes a model ``<index>_<Operator>``: the Python backend running only that operator
(:class:`funnel.triton.runtime.OperatorModel`), or its native backend (``Operator.native_triton_model()``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funnel.errors import ExportError
from funnel.files import GRAPH_FILE, OP_FILE, OP_SHIM, artifact_dir_name, dumps_json, op_document, write_op_artifacts
from funnel.schema import Schema
from funnel.triton import config as cfg
from funnel.triton.wire import OUTPUT_PREFIX, TensorSpec, column_specs, tensor_specs

if TYPE_CHECKING:
    from funnel.ensemble import Ensemble
    from funnel.graph import BoundNode
    from funnel.operator import NativeTritonModel

__all__ = ["write_ensemble_models"]

#: column name → {"dense"|"values"|"offsets": ensemble tensor name}
Wiring = dict[str, dict[str, str]]


def _wiring(specs: list[TensorSpec], prefix: str = "") -> Wiring:
    """Which ensemble tensor (``prefix`` + spec name) carries each part of each column."""
    out: Wiring = {}
    for spec in specs:
        out.setdefault(spec.column, {})[spec.part] = prefix + spec.name
    return out


def _restrict(w: Wiring, names: list[str], where: str) -> Wiring:
    missing = [n for n in names if n not in w]
    if missing:  # the graph is bound, so this is an exporter bug
        raise ExportError(f"ensemble export: {where}: no tensor carries column(s) {missing}")
    return {n: w[n] for n in names}


def write_ensemble_models(
    ensemble: Ensemble, graph_dict: dict[str, Any], root: Path, name: str, version: int, instance_kind: str,
    instance_count: int, max_batch_size: int, dynamic_batching: bool, max_queue_delay_us: int = 0,
    native_backends: bool = True, parameters: dict[str, str] | None = None,
) -> list[str]:
    """Write every operator's model and the ensemble model under ``root``; returns model names."""
    graph = ensemble.graph
    request = _wiring(tensor_specs(graph.request_schema))
    wiring: dict[int, Wiring] = {}
    steps: list[dict[str, Any]] = []
    models = [name]
    for bound in graph.nodes:
        node = bound.node
        merged: Wiring = {}
        for p in node.parents:
            merged.update(wiring[graph.bound(p).index])
        if node.kind != "op":  # select, drop, concat: wiring only
            wiring[bound.index] = _restrict(merged if node.parents else request, bound.output_schema.column_names,
                                            node.label)
            continue
        op = node.op
        assert op is not None
        inputs = _restrict(merged, bound.input_schema.column_names, op.label)
        model = artifact_dir_name(bound.index, op)
        models.append(model)
        version_dir = root / model / str(version)
        version_dir.mkdir(parents=True)
        native = op.native_triton_model() if native_backends else None
        if native is not None:
            input_map, out_specs, wiring[bound.index] = _write_native(op, native, bound, model, version_dir, inputs)
            python: dict[str, Any] = {}
        else:
            write_op_artifacts(op, version_dir / "artifacts")
            (version_dir / OP_FILE).write_bytes(dumps_json(op_document(graph_dict, bound.index)))
            (version_dir / "model.py").write_text(OP_SHIM)
            in_specs, out_specs = tensor_specs(bound.input_schema), tensor_specs(bound.output_schema)
            input_map = {s.name: inputs[s.column][s.part] for s in in_specs}
            wiring[bound.index] = _wiring(out_specs, f"{model}/")
            python = {"_python": (in_specs, out_specs)}  # config.pbtxt written once the inputs are final
        steps.append({"model_name": model, "input_map": input_map,
                      "output_map": {s.name: f"{model}/{s.name}" for s in out_specs}, **python})
    final = wiring[graph.bound(graph.output_node).index]
    taken = {s.name for s in tensor_specs(graph.request_schema)}
    out_specs = [replace(s, name=OUTPUT_PREFIX + s.name) if s.name in taken else s
                 for s in tensor_specs(graph.output_schema)]
    rename: dict[str, str] = {}
    for spec in out_specs:
        tensor = final[spec.column][spec.part]
        if tensor in rename or "/" not in tensor:
            raise ExportError(f"ensemble mode: output column {spec.column!r} passes a request column (or a shared "
                              "tensor) straight through; Triton ensembles cannot output their inputs. Use "
                              "mode='executor' or drop the column from the output")
        rename[tensor] = spec.name
    for step in steps:
        for key in ("input_map", "output_map"):
            step[key] = {k: rename.get(v, v) for k, v in step[key].items()}
    _prune_unused(steps, graph.request_schema, set(rename.values()))
    config_args = dict(max_batch_size=max_batch_size, dynamic_batching=dynamic_batching, instance_kind=instance_kind,
                       instance_count=instance_count, max_queue_delay_us=max_queue_delay_us,
                       parameters={"FUNNEL_DEVICE": instance_kind, **(parameters or {})})
    for step in steps:
        if "_python" in step:
            text = cfg.python_model_config(step["model_name"], *step.pop("_python"), **config_args)
            (root / step["model_name"] / "config.pbtxt").write_text(text)
    (root / name / str(version)).mkdir(parents=True)
    # the whole graph as data (Triton ignores it): `funnel graph REPO` draws ensemble-mode exports too
    (root / name / str(version) / GRAPH_FILE).write_bytes(dumps_json(graph_dict))
    (root / name / "config.pbtxt").write_text(_ensemble_config(name, graph, out_specs, steps, max_batch_size))
    return models


def _prune_unused(steps: list[dict[str, Any]], request_schema: Schema, outputs: set[str]) -> None:
    """Triton refuses an ensemble holding a tensor nothing reads. Operator outputs nothing downstream reads
    are left unmapped; request columns no operator reads go to the first Python-backend step as extra
    inputs it ignores, so the ensemble still accepts the full request schema (as executor mode does)."""
    consumed = {v for step in steps for v in step["input_map"].values()} | outputs
    for step in steps:
        step["output_map"] = {k: v for k, v in step["output_map"].items() if v in consumed}
    unused = [spec for spec in tensor_specs(request_schema) if spec.name not in consumed]
    if not unused:
        return
    python = next((step for step in steps if "_python" in step), None)
    if python is None:
        raise ExportError(f"ensemble mode: request column(s) {sorted({s.column for s in unused})} are read by no "
                          "operator, and every step runs on a native backend that cannot accept them. Drop them "
                          "from the request schema or use mode='executor'")
    in_specs, out_specs = python["_python"]
    taken = {s.name for s in in_specs}
    extra = [s for s in unused if s.name not in taken]
    python["_python"] = ([*in_specs, *extra], out_specs)
    python["input_map"].update({s.name: s.name for s in extra})


def _map_block(key: str, mapping: dict[str, str]) -> str:
    return "".join(f"      {key} {{\n        key: {cfg._q(k)}\n        value: {cfg._q(v)}\n      }}\n"
                   for k, v in mapping.items())


def _ensemble_config(name: str, graph: Any, out_specs: list[TensorSpec], steps: list[dict[str, Any]],
                     max_batch_size: int) -> str:
    text = f"name: {cfg._q(name)}\nplatform: \"ensemble\"\nmax_batch_size: {int(max_batch_size)}\n"
    text += cfg.tensor_block("input", tensor_specs(graph.request_schema), batched=max_batch_size > 0)
    text += cfg.tensor_block("output", out_specs, batched=max_batch_size > 0)
    text += "ensemble_scheduling {\n  step [\n"
    text += ",\n".join(
        f"    {{\n      model_name: {cfg._q(s['model_name'])}\n      model_version: -1\n"
        + _map_block("input_map", s["input_map"]) + _map_block("output_map", s["output_map"]) + "    }"
        for s in steps
    )
    return text + "\n  ]\n}\n"


def _native_specs(schema: Schema, names: dict[str, str], lifted: bool) -> list[TensorSpec]:
    """One tensor per column (its element when lifted), named as the native backend names it."""
    specs = []
    for col in schema:
        col = col.element() if lifted else col
        (spec,) = column_specs(col)
        specs.append(TensorSpec(names.get(col.name, col.name), spec.dtype, spec.dims, col.name, spec.part))
    return specs


def _write_native(
    op: Any, native: NativeTritonModel, bound: BoundNode, model: str, version_dir: Path, inputs: Wiring,
) -> tuple[dict[str, str], list[TensorSpec], Wiring]:
    """A native-backend model (e.g. tensorflow_savedmodel): the operator writes its artifact, the config
    declares the backend's tensor names, reshaped from funnel's leading request dimension to what the
    backend expects (flat candidate rows if lifted). Returns the input map, output tensors and their wiring."""
    op.write_native_model(version_dir)
    in_specs = _native_specs(bound.input_schema, native.inputs, bound.lifted)
    out_specs = _native_specs(bound.output_schema, native.outputs, bound.lifted)
    input_map = {s.name: inputs[s.column]["values" if bound.lifted else "dense"] for s in in_specs}
    produced = _wiring(out_specs, f"{model}/")
    if bound.lifted:  # flat candidate rows out: regrouped by the inputs' offsets
        offsets = inputs[in_specs[0].column].get("offsets")
        produced = {column: {"values": w["dense"], "offsets": offsets} for column, w in produced.items()}
    reshape = {s.name: list(s.dims) for s in in_specs + out_specs}
    text = f"name: {cfg._q(model)}\n"
    text += f"platform: {cfg._q(native.platform)}\n" if native.platform else ""
    text += f"backend: {cfg._q(native.backend)}\n" if native.backend else ""
    # max_batch_size 0: the leading request dimension is explicit and reshaped away
    text += "max_batch_size: 0\n" + cfg.tensor_block("input", in_specs, reshape=reshape, batched=False)
    text += cfg.tensor_block("output", out_specs, reshape=reshape, batched=False)
    text += cfg.parameters_block(native.parameters)
    (version_dir.parent / "config.pbtxt").write_text(text)
    return input_map, out_specs, produced
