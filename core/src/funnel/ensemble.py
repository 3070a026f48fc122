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
from funnel.graph import Graph, Node, check_graph_data
from funnel.operator import Operator
from funnel.registry import get_operator
from funnel.schema import Schema
from funnel.table import Table

__all__ = ["Ensemble", "load_operator", "checked_config"]


def _dist_of(op: Operator) -> tuple[str | None, str | None]:
    """The distribution (and version) that provides an operator's class, when known."""
    module = type(op).__module__.split(".", 1)[0]
    try:
        dists = importlib.metadata.packages_distributions().get(module, [])
    except Exception:  # noqa: BLE001
        dists = []
    if not dists:
        return None, None
    name = dists[0]
    try:
        return name, importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return name, None


def load_operator(
    type_name: str,
    config: dict[str, Any],
    artifact_dir: Path | Callable[[Operator], Path],
    distribution: str | None = None,
    trust_code: bool | None = None,
    where: str = "",
) -> Operator:
    """Rebuild one operator: registry lookup by type name, ``from_config``, ``load_artifacts``.

    ``artifact_dir`` is the directory, or a function of the rebuilt operator giving it. A
    missing plugin raises PluginNotInstalled (``distribution`` is the pip hint recorded at export).
    The config is validated strictly first (:func:`checked_config`); ``where`` (e.g. "node 3
    of repo/funnel/1/funnel-graph.json") goes into its errors.
    """
    config = checked_config(type_name, config, where, distribution=distribution, trust_code=trust_code)
    op = get_operator(type_name, distribution=distribution, trust_code=trust_code).from_config(config)
    directory = artifact_dir(op) if callable(artifact_dir) else artifact_dir
    artifact_step(op.load_artifacts, directory, f"{op.label}: loading artifacts from {directory}")
    return op


def checked_config(
    type_name: str,
    config: Any,
    where: str = "",
    distribution: str | None = None,
    trust_code: bool | None = None,
) -> dict[str, Any]:
    """``config`` checked against the operator's declared config, before ``from_config`` runs.

    An operator class that declares ``Config`` (a ``msgspec.Struct`` with
    ``forbid_unknown_fields=True`` and no defaults) gets a typed check: a missing key, an
    unknown key or a wrong type is an ExportError naming ``where``, the operator and the key —
    nothing is defaulted at load. Without ``Config``, a class using the default
    ``from_config`` (``cls(**config)``) is checked against its ``__init__`` signature
    (unknown keys and missing required keys).
    """
    at = f"{where}: " if where else ""
    cls = get_operator(type_name, distribution=distribution, trust_code=trust_code)
    if not isinstance(config, dict):
        raise ExportError(f"{at}{type_name}: the operator config must be a JSON object, got {type(config).__name__}")
    spec = getattr(cls, "Config", None)
    if isinstance(spec, type) and issubclass(spec, msgspec.Struct):
        try:
            msgspec.convert(config, spec)
        except msgspec.ValidationError as exc:
            raise ExportError(
                f"{at}{type_name} config is invalid: {exc} (the config was hand-edited or written by another "
                "version; export the graph again)"
            ) from None
        return config
    if getattr(cls.from_config, "__func__", None) is getattr(Operator.from_config, "__func__", None):
        params = inspect.signature(cls.__init__).parameters
        named = {n: p for n, p in params.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            unknown = sorted(set(config) - set(named))
            if unknown:
                raise ExportError(
                    f"{at}{type_name} config has unknown key(s) {unknown}; it takes {sorted(named)}"
                )
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
    """A graph bound to the request schema it serves.

    ``Ensemble(output_node, request_schema)`` binds the graph (schema errors surface here),
    ``transform()`` runs it in-process, ``save()``/``load()`` write and rebuild it without
    pickle, and ``export()`` writes a Triton model repository.
    """

    def __init__(self, output_node: Any, request_schema: Schema | list[Any]) -> None:
        if not isinstance(request_schema, Schema):
            request_schema = Schema(request_schema)
        self.graph = Graph(Node.coerce(output_node), request_schema)
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
        """Run the graph in-process on a Table, a dict of columns, or a pandas DataFrame.

        Returns the same kind it was given (a DataFrame for a DataFrame, else a Table).
        """
        table = Table.from_any(data, schema=self.input_schema)
        out = self._executor.transform(table, validate=validate)
        if type(data).__module__.startswith("pandas"):
            return out.to_pandas()
        return out

    # -- portable save / load -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The plain-data description written to ``funnel-graph.json``."""
        required: dict[str, dict[str, Any]] = {}
        for bound in self.graph.op_nodes:
            op = bound.node.op
            assert op is not None
            dist, version = _dist_of(op)
            required[op.type_name] = {"distribution": dist, "version": version}
        return {
            "format": FORMAT,
            "funnel_version": _core_version(),
            "graph": self.graph.to_dict(
                {b.index: _check_to_config(b.node.op, b.index) for b in self.graph.op_nodes}  # type: ignore[arg-type]
            ),
            "operators": required,
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
            op = bound.node.op
            assert op is not None
            write_op_artifacts(op, root / artifact_dir_name(bound.index, op))
        if root.exists() and not any(root.iterdir()):
            root.rmdir()

    @classmethod
    def load(cls, path: str | Path, freeze_gc: bool = False, trust_code: bool | None = None) -> Ensemble:
        """Rebuild an ensemble written by :meth:`save` (or an exported model's directory).

        Operators are found through the registry by type name; a missing plugin raises
        PluginNotInstalled naming the pip distribution. ``freeze_gc`` moves everything
        loaded so far out of the garbage collector's sight (cuts tail latency of servers).
        ``trust_code=True`` (or ``FUNNEL_TRUST_CODE=1``) lets ``module:Name`` operator types
        that no plugin registers be imported (docs/reliability.md); by default they are refused.
        """
        path = Path(path)
        graph_file = path / GRAPH_FILE
        if not graph_file.is_file():
            raise ExportError(f"{graph_file} not found: not a funnel graph directory")
        try:
            data = msgspec.json.decode(graph_file.read_bytes())
        except msgspec.DecodeError as exc:
            raise ExportError(f"{graph_file} is not valid JSON: {exc}") from exc
        if data.get("format") != FORMAT:
            raise ExportError(f"{graph_file}: unsupported format {data.get('format')!r}, expected {FORMAT!r}")
        return cls.from_dict(data, path / "artifacts", freeze_gc=freeze_gc, trust_code=trust_code, source=str(graph_file))

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], artifact_root: Path, freeze_gc: bool = False, trust_code: bool | None = None,
        source: str = "the graph description",
    ) -> Ensemble:
        """Rebuild from :meth:`to_dict` output and an artifact directory.

        The description is checked first (:func:`funnel.graph.check_graph_data`: node
        entries, parent indexes) and every operator config strictly (:func:`checked_config`);
        errors name ``source``, the node and the key.
        """
        if not isinstance(data, dict) or not isinstance(data.get("graph"), dict):
            raise ExportError(f"{source}: no 'graph' object; not a funnel graph description")
        graph_data = data["graph"]
        check_graph_data(graph_data, source)
        hints = data.get("operators", {})
        ops: dict[int, Operator] = {}
        for entry in graph_data["nodes"]:
            if entry["kind"] != "op":
                continue
            type_name = entry["op"]["type"]
            ops[entry["index"]] = load_operator(
                type_name,
                entry["op"]["config"],
                lambda op, index=entry["index"]: artifact_root / artifact_dir_name(index, op),
                distribution=(hints.get(type_name) or {}).get("distribution"),
                trust_code=trust_code,
                where=f"{source}, node {entry['index']}",
            )
        graph = Graph.from_dict(graph_data, ops)
        ens = cls.__new__(cls)
        ens.graph = graph
        ens._executor = LocalExecutor(graph)
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


def _core_version() -> str | None:
    try:
        return importlib.metadata.version("funnel")
    except importlib.metadata.PackageNotFoundError:
        return None


