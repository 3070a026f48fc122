"""Ensemble mode: one Triton model per operator node, wired by a ``platform: "ensemble"`` model.

Select/concat/drop nodes become wiring (which tensor feeds which model input); every
operator node becomes a Python-backend model ``<index>_<Operator>`` running only that
operator (:class:`funnel.triton.runtime.OperatorModel`), or the operator's native backend
when it declares one (``Operator.native_triton_model()``).
"""

from __future__ import annotations

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


def _request_wiring(schema: Schema) -> Wiring:
    out: Wiring = {}
    for spec in tensor_specs(schema):
        out.setdefault(spec.column, {})[spec.part] = spec.name
    return out


def _restrict(w: Wiring, names: list[str], where: str) -> Wiring:
    missing = [n for n in names if n not in w]
    if missing:  # the graph is bound, so this is an exporter bug
        raise ExportError(f"ensemble export: {where}: no tensor carries column(s) {missing}")
    return {n: w[n] for n in names}


def write_ensemble_models(
    ensemble: Ensemble, graph_dict: dict[str, Any], root: Path, name: str, version: int, instance_kind: str, instance_count: int,
    max_batch_size: int, dynamic_batching: bool, max_queue_delay_us: int = 0, native_backends: bool = True,
    parameters: dict[str, str] | None = None,
) -> list[str]:
    """Write every operator's model and the ensemble model under ``root``; returns model names."""

    graph = ensemble.graph
    request = _request_wiring(graph.request_schema)
    wiring: dict[int, Wiring] = {}
    steps: list[dict[str, Any]] = []
    models = [name]
    for bound in graph.nodes:
        node = bound.node
        parents = [wiring[graph.bound(p).index] for p in node.parents]
        out_names = bound.output_schema.column_names
        if node.kind in ("select", "drop"):
            source = parents[0] if parents else request
            wiring[bound.index] = _restrict(source, out_names, node.label)
            continue
        merged: Wiring = {}
        for w in parents:
            merged.update(w)
        if node.kind == "concat":
            wiring[bound.index] = _restrict(merged, out_names, node.label)
            continue
        op = node.op
        assert op is not None
        inputs = _restrict(merged, bound.input_schema.column_names, op.label)
        model = artifact_dir_name(bound.index, op)
        models.append(model)
        model_dir = root / model
        version_dir = model_dir / str(version)
        version_dir.mkdir(parents=True)
        native = op.native_triton_model() if native_backends else None
        if native is not None:
            step, produced = _write_native(op, native, bound, model, model_dir, version_dir, inputs)
        else:
            write_op_artifacts(op, version_dir / "artifacts")
            (version_dir / OP_FILE).write_bytes(dumps_json(op_document(graph_dict, bound.index)))
            (version_dir / "model.py").write_text(OP_SHIM)
            in_specs = tensor_specs(bound.input_schema)
            out_specs = tensor_specs(bound.output_schema)
            config_args = {
                "max_batch_size": max_batch_size, "dynamic_batching": dynamic_batching,
                "instance_kind": instance_kind, "instance_count": instance_count,
                "parameters": {"FUNNEL_DEVICE": instance_kind, **(parameters or {})},
                "max_queue_delay_us": max_queue_delay_us,
            }
            (model_dir / "config.pbtxt").write_text(cfg.python_model_config(model, in_specs, out_specs, **config_args))
            step = {
                "model_name": model,
                "input_map": {s.name: inputs[s.column][s.part] for s in in_specs},
                "output_map": {s.name: f"{model}/{s.name}" for s in out_specs},
                "_python": (model_dir, in_specs, out_specs, config_args),
            }
            produced = {}
            for s in out_specs:
                produced.setdefault(s.column, {})[s.part] = f"{model}/{s.name}"
        steps.append(step)
        wiring[bound.index] = produced
    final = wiring[graph.bound(graph.output_node).index]
    rename: dict[str, str] = {}
    taken = {s.name for s in tensor_specs(graph.request_schema)}
    out_specs = [
        TensorSpec(OUTPUT_PREFIX + s.name if s.name in taken else s.name, s.dtype, s.dims, s.column, s.part)
        for s in tensor_specs(graph.output_schema)
    ]
    for spec in out_specs:
        tensor = final[spec.column][spec.part]
        if tensor in rename or "/" not in tensor:
            raise ExportError(
                f"ensemble mode: output column {spec.column!r} passes a request column (or a shared tensor) "
                "straight through; Triton ensembles cannot output their inputs. Use mode='executor' or "
                "drop the column from the output"
            )
        rename[tensor] = spec.name
    for step in steps:
        step["input_map"] = {k: rename.get(v, v) for k, v in step["input_map"].items()}
        step["output_map"] = {k: rename.get(v, v) for k, v in step["output_map"].items()}
    _prune_unused(steps, graph.request_schema, set(rename.values()))
    (root / name).mkdir()
    (root / name / str(version)).mkdir()
    # the whole graph as data (Triton ignores it): `funnel graph REPO` draws ensemble-mode exports too
    (root / name / str(version) / GRAPH_FILE).write_bytes(dumps_json(graph_dict))
    (root / name / "config.pbtxt").write_text(_ensemble_config(name, graph, out_specs, steps, max_batch_size))
    return models


def _prune_unused(steps: list[dict[str, Any]], request_schema: Schema, outputs: set[str]) -> None:
    """Triton refuses an ensemble holding a tensor nothing reads. Operator outputs nothing
    downstream reads are left unmapped; request columns no operator reads are handed to the
    first Python-backend step as extra inputs it ignores, so the ensemble still accepts the
    full request schema (the same inputs as executor mode)."""
    consumed = {v for step in steps for v in step["input_map"].values()} | outputs
    for step in steps:
        step["output_map"] = {k: v for k, v in step["output_map"].items() if v in consumed}
    unused = [spec for spec in tensor_specs(request_schema) if spec.name not in consumed]
    if not unused:
        return
    python = next((step for step in steps if "_python" in step), None)
    if python is None:
        raise ExportError(
            f"ensemble mode: request column(s) {sorted({s.column for s in unused})} are read by no operator, and "
            "every step runs on a native backend that cannot accept them. Drop them from the request schema "
            "or use mode='executor'"
        )
    model_dir, in_specs, out_specs, config_args = python["_python"]
    taken = {s.name for s in in_specs}
    extra = [s for s in unused if s.name not in taken]
    (model_dir / "config.pbtxt").write_text(
        cfg.python_model_config(python["model_name"], [*in_specs, *extra], out_specs, **config_args)
    )
    python["input_map"].update({s.name: s.name for s in extra})


def _map_block(key: str, mapping: dict[str, str]) -> str:
    return "".join(
        f"      {key} {{\n        key: {cfg._q(k)}\n        value: {cfg._q(v)}\n      }}\n" for k, v in mapping.items()
    )


def _ensemble_config(
    name: str, graph: Any, out_specs: list[TensorSpec], steps: list[dict[str, Any]], max_batch_size: int
) -> str:
    text = f"name: {cfg._q(name)}\nplatform: \"ensemble\"\nmax_batch_size: {int(max_batch_size)}\n"
    text += cfg.tensor_block("input", tensor_specs(graph.request_schema), batched=max_batch_size > 0)
    text += cfg.tensor_block("output", out_specs, batched=max_batch_size > 0)
    text += "ensemble_scheduling {\n  step [\n"
    text += ",\n".join(
        "    {\n"
        f"      model_name: {cfg._q(s['model_name'])}\n      model_version: -1\n"
        + _map_block("input_map", s["input_map"]) + _map_block("output_map", s["output_map"])
        + "    }"
        for s in steps
    )
    return text + "\n  ]\n}\n"


def _write_native(
    op: Any, native: NativeTritonModel, bound: BoundNode, model: str, model_dir: Path, version_dir: Path,
    inputs: Wiring,
) -> tuple[dict[str, Any], Wiring]:
    """A native-backend model (e.g. tensorflow_savedmodel): the operator writes its artifact;
    the config declares the backend's tensor names. Tensors keep funnel's leading request
    dimension on the wire and are reshaped to what the backend expects (flat candidate rows
    for lifted operators)."""
    op.write_native_model(version_dir)
    in_schema = Schema([c.element() for c in bound.input_schema]) if bound.lifted else bound.input_schema
    out_schema = Schema([c.element() for c in bound.output_schema]) if bound.lifted else bound.output_schema
    in_specs: list[TensorSpec] = []
    input_map: dict[str, str] = {}
    for col in in_schema:
        tensor = native.inputs.get(col.name, col.name)
        (spec,) = column_specs(col)
        in_specs.append(TensorSpec(tensor, spec.dtype, spec.dims, col.name, spec.part))
        part = "values" if bound.lifted else "dense"
        input_map[tensor] = inputs[col.name][part]
    out_specs: list[TensorSpec] = []
    produced: Wiring = {}
    offsets = inputs[in_schema.column_names[0]].get("offsets") if bound.lifted else None
    for col in out_schema:
        tensor = native.outputs.get(col.name, col.name)
        (spec,) = column_specs(col)
        out_specs.append(TensorSpec(tensor, spec.dtype, spec.dims, col.name, spec.part))
        produced[col.name] = {"values": f"{model}/{tensor}", "offsets": offsets} if bound.lifted else {
            "dense": f"{model}/{tensor}"}
    reshape = {s.name: list(s.dims) for s in in_specs + out_specs}
    head = f"name: {cfg._q(model)}\n"
    head += f"platform: {cfg._q(native.platform)}\n" if native.platform else ""
    head += f"backend: {cfg._q(native.backend)}\n" if native.backend else ""
    # max_batch_size 0: the leading request dimension is explicit and reshaped away
    head += "max_batch_size: 0\n"
    lead = [TensorSpec(s.name, s.dtype, (1, *s.dims), s.column, s.part) for s in in_specs]
    lead_out = [TensorSpec(s.name, s.dtype, (1, *s.dims), s.column, s.part) for s in out_specs]
    text = head + cfg.tensor_block("input", lead, reshape=reshape) + cfg.tensor_block("output", lead_out, reshape=reshape)
    text += cfg.parameters_block(native.parameters)
    (model_dir / "config.pbtxt").write_text(text)
    step = {
        "model_name": model,
        "input_map": input_map,
        "output_map": {s.name: f"{model}/{s.name}" for s in out_specs},
    }
    return step, produced
