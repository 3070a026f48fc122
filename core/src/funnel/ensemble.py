"""Ensemble: a bound graph + request schema; run in-process, save/load, export to Triton."""

from __future__ import annotations

import gc
import importlib.metadata
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from funnel.errors import ExportError
from funnel.executor import LocalExecutor
from funnel.files import FORMAT, GRAPH_FILE, artifact_dir_name, artifact_step, dumps_json, write_op_artifacts
from funnel.graph import Graph, check_graph_data
from funnel.operator import Operator
from funnel.registry import get_operator
from funnel.schema import Schema
from funnel.table import Table

__all__ = ["Ensemble", "load_operator", "checked_config"]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _requirement(op: Operator) -> dict[str, str | None]:
    """The distribution (and version) that provides an operator's class, when known."""
    try:
        name = importlib.metadata.packages_distributions()[type(op).__module__.split(".", 1)[0]][0]
    except Exception:  # noqa: BLE001 - not installed as a distribution, or unreadable metadata: no hint
        name = None
    return {"distribution": name, "version": _version(name) if name else None}


def load_operator(type_name: str, config: dict[str, Any], artifact_dir: Path | Callable[[Operator], Path],
                  distribution: str | None = None, trust_code: bool | None = None, where: str = "") -> Operator:
    """Rebuild one operator: :func:`checked_config` (errors name ``where``), registry lookup (``distribution``:
    the pip hint recorded at export), ``from_config``, ``load_artifacts`` (``artifact_dir``, or its result)."""
    config = checked_config(type_name, config, where, distribution=distribution, trust_code=trust_code)
    op = get_operator(type_name, distribution=distribution, trust_code=trust_code).from_config(config)
    directory = artifact_dir(op) if callable(artifact_dir) else artifact_dir
    artifact_step(op.load_artifacts, directory, f"{op.label}: loading artifacts from {directory}")
    return op


def checked_config(type_name: str, config: Any, where: str = "", distribution: str | None = None,
                   trust_code: bool | None = None) -> dict[str, Any]:
    """``config`` checked strictly before ``from_config`` runs (docs/writing-a-plugin.md, "Strict config
    checking"): against the class's ``Config`` Struct, else, with the default ``from_config``, against
    its ``__init__``; an ExportError names ``where``, the operator and the key."""
    at = f"{where}: " if where else ""
    cls = get_operator(type_name, distribution=distribution, trust_code=trust_code)
    if not isinstance(config, dict):
        raise ExportError(f"{at}{type_name}: the operator config must be a JSON object, got {type(config).__name__}")
    spec = getattr(cls, "Config", None)
    if isinstance(spec, type) and issubclass(spec, msgspec.Struct):
        try:
            msgspec.convert(config, spec)
        except msgspec.ValidationError as exc:
            raise ExportError(f"{at}{type_name} config is invalid: {exc} (the config was hand-edited or written "
                              "by another version; export the graph again)") from None
    elif getattr(cls.from_config, "__func__", None) is getattr(Operator.from_config, "__func__", None):
        params = inspect.signature(cls.__init__).parameters
        named = {n: p for n, p in params.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        unknown = sorted(set(config) - set(named))
        if unknown and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            raise ExportError(f"{at}{type_name} config has unknown key(s) {unknown}; it takes {sorted(named)}")
        missing = sorted(n for n, p in named.items() if p.default is p.empty and n not in config)
        if missing:
            raise ExportError(f"{at}{type_name} config is missing key(s) {missing}")
    return config


def _check_to_config(op: Operator, index: int) -> dict[str, Any]:
    """``op.to_config()``, checked against the operator's ``Config`` when it declares one (a
    config that would not load again is refused when it is written, not when it is served)."""
    config = op.to_config()
    spec = getattr(type(op), "Config", None)
    if isinstance(spec, type) and issubclass(spec, msgspec.Struct):
        try:
            msgspec.convert(msgspec.to_builtins(config), spec)
        except msgspec.ValidationError as exc:
            raise ExportError(f"node {index}: {op.label}.to_config() does not match {op.label}.Config: {exc}") from None
    return config


class Ensemble:
    """A graph bound to the request schema it serves (schema errors surface here): ``transform()`` runs it
    in-process, ``save()``/``load()`` write and rebuild it without pickle, ``export()`` serves it."""

    def __init__(self, output_node: Any, request_schema: Schema | list[Any]) -> None:
        schema = request_schema if isinstance(request_schema, Schema) else Schema(request_schema)
        self.graph = Graph(output_node, schema)
        self._executor = LocalExecutor(self.graph)

    @property
    def input_schema(self) -> Schema:
        """The request schema."""
        return self.graph.request_schema

    @property
    def output_schema(self) -> Schema:
        """The schema of what transform() returns."""
        return self.graph.output_schema

    def transform(self, data: Any, validate: bool = True) -> Any:
        """Run the graph in-process on a Table, a dict of columns, or a pandas DataFrame; returns
        the same kind it was given (a DataFrame for a DataFrame, else a Table)."""
        out = self._executor.transform(Table.from_any(data, schema=self.input_schema), validate=validate)
        return out.to_pandas() if type(data).__module__.startswith("pandas") else out

    # -- portable save / load -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The plain-data description written to ``funnel-graph.json``."""
        op_nodes = self.graph.op_nodes
        return {
            "format": FORMAT,
            "funnel_version": _version("funnel"),
            "graph": self.graph.to_dict({b.index: _check_to_config(b.node.op, b.index) for b in op_nodes}),
            "operators": {b.node.op.type_name: _requirement(b.node.op) for b in op_nodes},
        }

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write ``funnel-graph.json`` and each operator's artifacts under ``path``."""
        path = Path(path)
        if path.exists() and any(path.iterdir()) and not overwrite:
            raise ExportError(f"{path} is not empty; pass overwrite=True to replace it")
        path.mkdir(parents=True, exist_ok=True)
        self.write_artifacts(path / "artifacts")
        (path / GRAPH_FILE).write_bytes(dumps_json(self.to_dict()))
        return path

    def write_artifacts(self, root: Path) -> None:
        """Call ``save_artifacts`` of every operator into ``root/<index>_<Name>/``."""
        for bound in self.graph.op_nodes:
            write_op_artifacts(bound.node.op, root / artifact_dir_name(bound.index, bound.node.op))
        if root.exists() and not any(root.iterdir()):
            root.rmdir()

    @classmethod
    def load(cls, path: str | Path, freeze_gc: bool = False, trust_code: bool | None = None) -> Ensemble:
        """Rebuild an ensemble written by :meth:`save` (or an exported model's directory). ``freeze_gc``
        moves what is loaded out of the garbage collector's sight (tail latency); ``trust_code=True`` (or
        ``FUNNEL_TRUST_CODE=1``) allows ``module:Name`` types no plugin registers (docs/reliability.md)."""
        graph_file = Path(path) / GRAPH_FILE
        if not graph_file.is_file():
            raise ExportError(f"{graph_file} not found: not a funnel graph directory")
        try:
            data = msgspec.json.decode(graph_file.read_bytes())
        except msgspec.DecodeError as exc:
            raise ExportError(f"{graph_file} is not valid JSON: {exc}") from exc
        if data.get("format") != FORMAT:
            raise ExportError(f"{graph_file}: unsupported format {data.get('format')!r}, expected {FORMAT!r}")
        return cls.from_dict(data, graph_file.parent / "artifacts", freeze_gc=freeze_gc, trust_code=trust_code,
                             source=str(graph_file))

    @classmethod
    def from_dict(cls, data: dict[str, Any], artifact_root: Path, freeze_gc: bool = False,
                  trust_code: bool | None = None, source: str = "the graph description") -> Ensemble:
        """Rebuild from :meth:`to_dict` output and an artifact directory, checked first
        (:func:`funnel.graph.check_graph_data`, :func:`checked_config`: errors name ``source`` and the node)."""
        if not isinstance(data, dict) or not isinstance(data.get("graph"), dict):
            raise ExportError(f"{source}: no 'graph' object; not a funnel graph description")
        check_graph_data(data["graph"], source)
        hints = data.get("operators", {})
        ops: dict[int, Operator] = {}
        for entry in (e for e in data["graph"]["nodes"] if e["kind"] == "op"):
            index, type_name = entry["index"], entry["op"]["type"]
            ops[index] = load_operator(
                type_name, entry["op"]["config"], lambda op, index=index: artifact_root / artifact_dir_name(index, op),
                distribution=(hints.get(type_name) or {}).get("distribution"), trust_code=trust_code,
                where=f"{source}, node {index}",
            )
        ens = cls.__new__(cls)
        ens.graph = Graph.from_dict(data["graph"], ops)
        ens._executor = LocalExecutor(ens.graph)
        if freeze_gc:
            gc.collect()
            gc.freeze()
        return ens

    def to_dot(self, title: str = "funnel") -> str:
        """Graphviz DOT source of the graph."""
        from funnel.render import to_dot  # noqa: PLC0415

        return to_dot(self.graph.to_dict(), title=title)

    def render(self, path: str | Path, title: str = "funnel") -> Path:
        """Draw the graph to ``path`` (``.svg``, ``.png``, ``.pdf`` need Graphviz; ``.dot`` does not)."""
        from funnel.render import render_dot  # noqa: PLC0415

        return render_dot(self.to_dot(title=title), path)

    def export(self, path: str | Path, **kwargs: Any) -> Path:
        """Write a Triton model repository; see :func:`funnel.triton.export.export_ensemble`."""
        from funnel.triton.export import export_ensemble  # noqa: PLC0415

        return export_ensemble(self, path, **kwargs)

    def __repr__(self) -> str:
        ops = " → ".join(b.node.label for b in self.graph.op_nodes)
        return f"Ensemble({self.input_schema.column_names} → {ops} → {self.output_schema.column_names})"
