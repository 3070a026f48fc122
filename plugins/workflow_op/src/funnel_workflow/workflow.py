"""Workflow: a funnel graph of workflow operators, fitted on a Dataset, applied to data.

The graph is core's (:class:`funnel.graph.Graph`, bound against the dataset's schema); the
evaluator here runs it over partitions — eagerly, or as ``dask.delayed`` tasks — with a
hash shuffle on the group keys before each ``Groupby``, so a group never spans partitions.
Statistics are learned operator by operator in graph order: per-partition partials, one
combine (NVTabular's fit phases).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from funnel.errors import ArtifactError, FunnelError, OperatorError, SchemaError
from funnel.executor import apply_operator
from funnel.graph import BoundNode, Graph, Node
from funnel.registry import get_operator
from funnel.schema import Schema
from funnel.selector import ColumnSelector
from funnel.table import Ragged, Table

from funnel_workflow.base import Operator, StatOperator
from funnel_workflow.code import class_from_config, class_to_config, trusting
from funnel_workflow.dataset import Dataset
from funnel_workflow.ops._util import hash64

__all__ = ["Workflow", "WORKFLOW_FILE", "FORMAT", "Plan", "run_partition"]

WORKFLOW_FILE = "workflow.json"
FORMAT = "funnel-workflow/1"
_SAMPLE_ROWS = 10_000


# -- partition runners -------------------------------------------------------------------------
def _register_pickling() -> None:
    """Dask ships tasks (and the graph objects they reference) pickled; core's immutable
    selector/schema classes need reducers for that."""
    import copyreg  # noqa: PLC0415

    from funnel.schema import ColumnSchema  # noqa: PLC0415

    def selector(sel: ColumnSelector) -> Any:
        return (type(sel), (list(sel.names), list(sel.tags)))

    copyreg.pickle(ColumnSelector, selector)
    for sub in ColumnSelector.__subclasses__():
        copyreg.pickle(sub, selector)
    copyreg.pickle(ColumnSchema, lambda c: (ColumnSchema.from_dict, (c.to_dict(),)))
    copyreg.pickle(Schema, lambda s: (Schema.from_dict, (s.to_dict(),)))



class _Eager:
    delayed = False

    def map(self, fn: Callable[..., Any], *lists: list[Any]) -> list[Any]:
        return [fn(*xs) for xs in zip(*lists)]

    def shuffle(self, parts: list[Table], keys: list[str]) -> list[Table]:
        if len(parts) <= 1:
            return parts
        pieces = [_split_by_key(p, keys, len(parts)) for p in parts]
        return [_concat_pieces(*[pc[j] for pc in pieces]) for j in range(len(parts))]

    def compute(self, items: list[Any]) -> list[Any]:
        return items


class _Delayed:
    delayed = True

    def __init__(self) -> None:
        import dask  # noqa: PLC0415

        _register_pickling()
        self.dask = dask

    def map(self, fn: Callable[..., Any], *lists: list[Any]) -> list[Any]:
        d = self.dask.delayed(fn, pure=False)
        return [d(*xs) for xs in zip(*lists)]

    def shuffle(self, parts: list[Any], keys: list[str]) -> list[Any]:
        n = len(parts)
        if n <= 1:
            return parts
        split = self.dask.delayed(_split_by_key, nout=n, pure=False)
        pieces = [split(p, keys, n) for p in parts]
        concat = self.dask.delayed(_concat_pieces, pure=False)
        return [concat(*[pc[j] for pc in pieces]) for j in range(n)]

    def compute(self, items: list[Any]) -> list[Any]:
        return list(self.dask.compute(*items))


def _split_by_key(table: Table, keys: list[str], n: int) -> list[Table]:
    h = np.zeros(table.num_rows, dtype=np.uint64)
    for k in keys:
        with np.errstate(over="ignore"):
            h = h * np.uint64(1_000_003) + hash64(np.asarray(table[k]))
    bucket = (h % np.uint64(n)).astype(np.int64)
    return [_take(table, np.nonzero(bucket == j)[0]) for j in range(n)]


def _take(table: Table, rows: np.ndarray) -> Table:
    return Table({k: (v.take_rows(rows) if isinstance(v, Ragged) else np.asarray(v)[rows]) for k, v in table.items()},
                 num_rows=int(rows.size))


def _concat_pieces(*pieces: Table) -> Table:
    return Table.concat(list(pieces))


# -- evaluation ------------------------------------------------------------------------------
def _select(table: Table, names: list[str], tolerant: bool) -> Table:
    if tolerant:
        names = [n for n in names if n in table]
    if table.column_names == names:
        return table
    return table.select(names)


def run_partition(bound: BoundNode, inputs: Table, serving: bool = False) -> Table:
    """Apply one op node to its input table (skipping offline-only ops when ``serving``)."""
    op = bound.node.op
    in_names = bound.input_schema.column_names
    out_names = bound.output_schema.column_names
    inputs = _select(inputs, in_names, serving)
    if serving and getattr(op, "offline_only", False):
        return _select(inputs, out_names, True)
    return apply_operator(op, inputs, bound.lifted, out_names, f"workflow node {bound.index}")


def _ancestors(graph: Graph, targets: Iterable[BoundNode]) -> set[int]:
    seen: set[int] = set()
    stack = [b.node for b in targets]
    while stack:
        node = stack.pop()
        b = graph.bound(node)
        if b.index in seen:
            continue
        seen.add(b.index)
        stack.extend(node.parents)
    return seen


def evaluate(graph: Graph, parts: list[Any], runner: Any, targets: list[BoundNode], serving: bool = False,
             inputs_of: BoundNode | None = None, record: Callable[[BoundNode, Table], None] | None = None,
             ) -> dict[int, list[Any]]:
    """Partition lists of each target node (or of ``inputs_of``'s input table)."""
    needed = _ancestors(graph, targets if inputs_of is None else [graph.bound(p) for p in inputs_of.node.parents])
    results: dict[int, list[Any]] = {}
    for bound in graph.nodes:
        if bound.index not in needed:
            continue
        node = bound.node
        parents = [results[graph.bound(p).index] for p in node.parents]
        out_names = bound.output_schema.column_names
        if node.kind == "select":
            source = parents[0] if parents else parts
            results[bound.index] = runner.map(lambda t, n=out_names: _select(t, n, serving), source)
        elif node.kind in ("concat", "drop"):
            src = parents if node.kind == "concat" else parents[:1]
            results[bound.index] = runner.map(lambda *ts, n=out_names: _merge(ts, n, serving), *src)
        else:
            merged = runner.map(lambda *ts: _merge(ts, None, serving), *parents)
            keys = getattr(node.op, "shuffle_keys", None)
            if keys and not (serving and node.op.offline_only):
                merged = runner.shuffle(merged, list(keys))
            if record is not None:
                results[bound.index] = runner.map(lambda t, b=bound: _recorded(b, t, serving, record), merged)
            else:
                results[bound.index] = runner.map(lambda t, b=bound: run_partition(b, t, serving), merged)
    if inputs_of is not None:
        parents = [results[graph.bound(p).index] for p in inputs_of.node.parents]
        merged = runner.map(lambda *ts: _merge(ts, None, serving), *parents)
        keys = getattr(inputs_of.node.op, "shuffle_keys", None)
        if keys:
            merged = runner.shuffle(merged, list(keys))
        names = inputs_of.input_schema.column_names
        return {inputs_of.index: runner.map(lambda t: _select(t, names, False), merged)}
    return {b.index: results[b.index] for b in targets}


class Plan:
    """A graph resolved once into steps for one in-memory table (the serving fast path):
    parent result slots, column names and the skip decision are fixed at build time."""

    def __init__(self, graph: Graph, serving: bool = True) -> None:
        self.serving = serving
        needed = _ancestors(graph, [graph.bound(graph.output_node)])
        self.steps: list[tuple[Any, ...]] = []
        for b in graph.nodes:
            if b.index not in needed:
                continue
            parents = [graph.bound(p).index for p in b.node.parents]
            out_names = b.output_schema.column_names
            kind = b.node.kind
            if kind == "op":
                skip = serving and bool(getattr(b.node.op, "offline_only", False))
                self.steps.append(("op", b.index, parents, out_names, b.input_schema.column_names, b, skip))
            else:
                self.steps.append((kind, b.index, parents if kind != "drop" else parents[:1], out_names, None, None,
                                   False))
        self.output = graph.bound(graph.output_node).index

    def run(self, table: Table) -> Table:
        results: dict[int, Table] = {}
        tolerant = self.serving
        for kind, index, parents, out_names, in_names, bound, skip in self.steps:
            if kind == "select":
                source = results[parents[0]] if parents else table
                results[index] = _select(source, out_names, tolerant)
                continue
            merged = results[parents[0]]
            for p in parents[1:]:
                merged = _merge((merged, results[p]), None, tolerant)
            if kind != "op":
                results[index] = _select(merged, out_names, tolerant)
            elif skip:
                results[index] = _select(merged, out_names, True)
            else:
                inputs = _select(merged, in_names, tolerant)
                results[index] = apply_operator(bound.node.op, inputs, bound.lifted, out_names,
                                                f"workflow node {index}")
        return results[self.output]


def _recorded(bound: BoundNode, table: Table, serving: bool, record: Callable[[BoundNode, Table], None]) -> Table:
    out = run_partition(bound, table, serving)
    record(bound, out)
    return out


def _merge(tables: tuple[Table, ...], names: list[str] | None, tolerant: bool) -> Table:
    merged = tables[0]
    for t in tables[1:]:
        if t.num_rows != merged.num_rows:
            raise SchemaError(
                f"cannot combine branches with {merged.num_rows} and {t.num_rows} rows (columns "
                f"{merged.column_names} and {t.column_names}); a branch after a Groupby or Filter has fewer "
                "rows than one before it — combine columns on the same side of the row change"
            )
        merged = merged.with_columns(t)
    return merged if names is None else _select(merged, names, tolerant)


# -- the workflow ------------------------------------------------------------------------------
def _as_dataset(data: Any) -> Dataset:
    return data if isinstance(data, Dataset) else Dataset(data)


class Workflow:
    """``nvt.Workflow(output_node)``: ``fit``, ``transform``, ``fit_transform``, ``save``/``load``."""

    def __init__(self, output_node: Any, client: Any = None, **unused: Any) -> None:
        if isinstance(output_node, (list, tuple, str, ColumnSelector)):
            output_node = Node.coerce(output_node if not isinstance(output_node, ColumnSelector) else output_node)
        if not isinstance(output_node, Node):
            raise SchemaError(f"Workflow takes a graph node (cols >> ops), got {type(output_node).__name__}")
        self.output_node = output_node
        self.client = client
        self.graph: Graph | None = None
        self.input_schema: Schema | None = None
        self._graphs: dict[Any, Graph] = {}

    # -- binding ---------------------------------------------------------------------------
    def _bind(self, schema: Schema) -> Graph:
        key = tuple((c.name, c.dtype, c.is_list) for c in schema)
        graph = self._graphs.get(key)
        if graph is None:
            graph = Graph(self.output_node, schema)
            self._graphs[key] = graph
        return graph

    def _root_columns(self, graph: Graph) -> list[str]:
        names: list[str] = []
        for b in graph.nodes:
            if b.node.kind == "select" and not b.node.parents and b.node.selector is not None:
                names.extend(n for n in b.output_schema.column_names if n not in names)
        return names

    @property
    def ops(self) -> list[Operator]:
        """The operators in graph order."""
        if self.graph is not None:
            return [b.node.op for b in self.graph.op_nodes]  # type: ignore[misc]
        found: list[Any] = []
        seen: set[int] = set()
        stack = [self.output_node]
        while stack:  # unfitted: the user's nodes, output first
            node = stack.pop()
            if node.id in seen:
                continue
            seen.add(node.id)
            if node.op is not None:
                found.append(node.op)
            stack.extend(node.parents)
        return found[::-1]

    @property
    def output_schema(self) -> Schema:
        """The schema of transform()'s output (tags, properties such as cardinality)."""
        if self.graph is None:
            raise OperatorError("Workflow: output_schema is known once the workflow is fitted (workflow.fit)")
        return self.graph.output_schema

    @property
    def output_dtypes(self) -> dict[str, str]:
        return {c.name: c.dtype for c in self.output_schema}

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, dataset: Any) -> Workflow:
        """Learn every operator's statistics on ``dataset`` (pandas, parquet or Dask)."""
        from tqdm.auto import tqdm  # noqa: PLC0415

        dataset = _as_dataset(dataset)
        self._graphs = {}
        graph = self._bind(dataset.schema)
        runner = _Delayed() if dataset.is_dask else _Eager()
        parts = dataset.partitions
        stat_nodes = [b for b in graph.op_nodes if isinstance(b.node.op, StatOperator)]
        bar = tqdm(total=len(stat_nodes) * (1 if runner.delayed else len(parts)), desc="fit",
                   disable=len(parts) <= 1 or not stat_nodes, leave=False)
        try:
            for b in stat_nodes:
                op = b.node.op
                assert isinstance(op, StatOperator)
                bar.set_description(f"fit {op.label}")
                ins = evaluate(graph, parts, runner, [], inputs_of=b)[b.index]
                if runner.delayed:
                    partials = runner.compute(runner.map(op.fit_partition, ins))
                    bar.update(1)
                else:
                    partials = []
                    for t in ins:
                        partials.append(op.fit_partition(t))
                        bar.update(1)
                op.combine(partials)
        finally:
            bar.close()
        self._record_dtypes(graph, dataset)
        self._graphs = {}
        self.graph = self._bind(dataset.schema)
        self.input_schema = dataset.schema.select_by_name(self._root_columns(self.graph))
        self.graph = self._bind(self.input_schema)
        return self

    def _record_dtypes(self, graph: Graph, dataset: Dataset) -> None:
        """Output dtypes of LambdaOps and user ops, from a sample of the data."""
        dynamic = [b for b in graph.op_nodes if getattr(b.node.op, "dynamic_dtypes", False)]
        if not dynamic:
            return
        first = dataset.partitions[0]
        first = first.compute() if dataset.is_dask else first
        sample = first.slice(0, min(first.num_rows, _SAMPLE_ROWS))

        def record(bound: BoundNode, out: Table) -> None:
            op = bound.node.op
            if getattr(op, "dynamic_dtypes", False):
                for name, col in out.items():
                    vals = col.values if isinstance(col, Ragged) else col
                    dtype = "str" if vals.dtype.kind in "OUS" else str(vals.dtype)
                    op.observed[name] = {"dtype": dtype, "is_list": isinstance(col, Ragged)}

        evaluate(graph, [sample], _Eager(), [graph.bound(graph.output_node)], record=record)

    # -- transform ---------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if self.graph is None:
            raise OperatorError("Workflow: not fitted; call workflow.fit(dataset) before transform")

    def transform(self, dataset: Any) -> Dataset:
        """Apply the fitted workflow; returns a Dataset (``.compute()``, ``.to_ddf()``, ``.to_parquet()``)."""
        self._require_fitted()
        dataset = _as_dataset(dataset)
        graph = self._graph_for(dataset.schema)
        runner = _Delayed() if dataset.is_dask else _Eager()
        out = evaluate(graph, dataset.partitions, runner, [graph.bound(graph.output_node)])
        parts = out[graph.bound(graph.output_node).index]
        return Dataset.from_partitions(parts, runner.delayed, graph.output_schema)

    def _graph_for(self, schema: Schema) -> Graph:
        assert self.input_schema is not None
        missing = [c for c in self.input_schema.column_names if c not in schema]
        if missing:
            raise SchemaError(
                f"Workflow.transform: the data lacks column(s) {missing}; the workflow reads "
                f"{self.input_schema.column_names}"
            )
        return self._bind(schema.select_by_name(self.input_schema.column_names))

    def fit_transform(self, dataset: Any) -> Dataset:
        """``fit(dataset)`` then ``transform(dataset)``."""
        dataset = _as_dataset(dataset)
        return self.fit(dataset).transform(dataset)

    def transform_table(self, table: Table, serving: bool = False) -> Table:
        """One in-memory Table through the workflow (the serving path when ``serving``)."""
        self._require_fitted()
        graph = self.serving_graph() if serving else self._graph_for(_schema_of_table(table, self.input_schema))
        return Plan(graph, serving=serving).run(table)

    def serving_graph(self) -> Graph:
        """The graph bound to the fitted input schema (offline-only ops are skipped when run)."""
        self._require_fitted()
        assert self.input_schema is not None
        return self._bind(self.input_schema)

    def serving_output_schema(self) -> Schema:
        """The output schema at serving: offline-only ops pass their input through, and
        columns only they create are absent."""
        graph = self.serving_graph()
        present: dict[int, Schema] = {}
        for b in graph.nodes:
            parents = [present[graph.bound(p).index] for p in b.node.parents]
            if b.node.kind == "select":
                src = parents[0] if parents else graph.request_schema
                schema = Schema([src[n] for n in b.output_schema.column_names if n in src])
            elif b.node.kind == "op" and getattr(b.node.op, "offline_only", False):
                merged = _schema_sum(parents)
                schema = Schema([merged[n] for n in b.output_schema.column_names if n in merged])
            elif b.node.kind == "op":
                schema = b.output_schema
            else:
                merged = _schema_sum(parents if b.node.kind == "concat" else parents[:1])
                schema = Schema([b.output_schema[n] for n in b.output_schema.column_names if n in merged])
            present[b.index] = schema
        return present[graph.bound(graph.output_node).index]

    def offline_only_ops(self) -> list[str]:
        """Labels of the operators the served workflow skips."""
        return [b.node.op.label for b in self.serving_graph().op_nodes if getattr(b.node.op, "offline_only", False)]

    @property
    def changes_rows(self) -> bool:
        """True when the served workflow returns a different row count (Groupby, online Filter)."""
        return any(getattr(b.node.op, "changes_rows", False) and not getattr(b.node.op, "offline_only", False)
                   for b in self.serving_graph().op_nodes)

    # -- categories ------------------------------------------------------------------------
    def _categorify_for(self, column: str) -> Any:
        from funnel_workflow.ops.categorify import Categorify  # noqa: PLC0415

        self._require_fitted()
        for op in self.ops:
            if isinstance(op, Categorify) and column in op.vocab:
                return op
        known = sorted({c for op in self.ops if isinstance(op, Categorify) for c in op.vocab})
        raise SchemaError(f"Workflow: no Categorify encodes column {column!r}; encoded columns: {known}")

    def categories(self, column: str) -> Any:
        """The fitted vocabulary of ``column``: DataFrame of ``encoded``, raw value, ``count``."""
        return self._categorify_for(column).categories(column)

    def decode(self, column: str, ids: Any, fill: Any = None) -> Any:
        """Raw values of encoded ids of ``column`` (reserved ids → ``fill``)."""
        return self._categorify_for(column).decode(column, ids, fill=fill)

    # -- save / load -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``workflow.json``, statistics (JSON + parquet/npy) and code as readable source."""
        self._require_fitted()
        graph = self.serving_graph()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        from funnel.files import dumps_json  # noqa: PLC0415

        ops_info: dict[str, Any] = {}
        configs: dict[int, dict[str, Any]] = {}
        for b in graph.op_nodes:
            op = b.node.op
            assert op is not None
            stem = f"{b.index}_{type(op).__name__}"
            where = f"operator {op.label} (node {b.index})"
            try:
                configs[b.index] = op.to_config()
            except FunnelError:
                raise
            except Exception as exc:
                raise ArtifactError(f"Workflow.save: {where}: to_config failed: {type(exc).__name__}: {exc}") from exc
            info: dict[str, Any] = {"label": op.label, "offline_only": bool(getattr(op, "offline_only", False))}
            if isinstance(op, Operator) and op.observed:
                info["observed"] = op.observed
            registered = _registered(op)
            if not registered:
                code = class_to_config(type(op), where)
                info["code"] = code
                if "source" in code:
                    (path / "code").mkdir(exist_ok=True)
                    (path / "code" / f"{stem}.py").write_text(code["source"])
            if isinstance(op, StatOperator):
                data, arrays = op.stats()
                sdir = path / "stats" / stem
                sdir.mkdir(parents=True, exist_ok=True)
                files = {}
                for name, arr in arrays.items():
                    if isinstance(arr, np.ndarray):
                        np.save(sdir / f"{name}.npy", arr, allow_pickle=False)
                        files[name] = f"{name}.npy"
                    else:
                        arr.to_parquet(sdir / f"{name}.parquet", index=False)
                        files[name] = f"{name}.parquet"
                (sdir / "stats.json").write_bytes(dumps_json({"stats": data, "files": files}))
                info["stats"] = f"stats/{stem}"
            ops_info[str(b.index)] = info
        doc = {
            "format": FORMAT,
            "input_schema": graph.request_schema.to_dict(),
            "output_schema": graph.output_schema.to_dict(),
            "serving_output_schema": self.serving_output_schema().to_dict(),
            "graph": graph.to_dict(configs),
            "ops": ops_info,
        }
        (path / WORKFLOW_FILE).write_bytes(dumps_json(doc))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], trust_code: bool | None = None, client: Any = None) -> Workflow:
        """Rebuild a saved workflow. Code saved in it (lambdas, user operator classes) loads
        only with ``trust_code=True`` or ``FUNNEL_TRUST_CODE=1``."""
        path = Path(path)
        file = path / WORKFLOW_FILE
        if not file.is_file():
            raise ArtifactError(f"{file} not found: not a saved funnel workflow directory")
        try:
            doc = json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{file} is not valid JSON: {exc}") from exc
        if doc.get("format") != FORMAT:
            raise ArtifactError(f"{file}: unsupported format {doc.get('format')!r}, expected {FORMAT!r}")
        ops: dict[int, Any] = {}
        with trusting(trust_code):
            for entry in doc["graph"]["nodes"]:
                if entry["kind"] != "op":
                    continue
                idx = entry["index"]
                info = doc["ops"][str(idx)]
                where = f"{file}: operator {info.get('label')} (node {idx})"
                if "code" in info:
                    klass = class_from_config(info["code"], where)
                elif ":" in entry["op"]["type"]:
                    raise ArtifactError(f"{where}: operator type {entry['op']['type']!r} is user code saved "
                                        "without its source; it cannot be loaded")
                else:
                    klass = get_operator(entry["op"]["type"])
                try:
                    op = klass.from_config(entry["op"]["config"])
                except FunnelError as exc:
                    raise type(exc)(f"{where}: {exc}") from exc
                except Exception as exc:
                    raise ArtifactError(f"{where}: rebuilding failed: {type(exc).__name__}: {exc}") from exc
                if isinstance(op, Operator):
                    op.__dict__["_observed"] = dict(info.get("observed", {}))
                    op.offline_only = bool(info.get("offline_only", False))
                if "stats" in info:
                    _load_stats(op, path / info["stats"], where)
                ops[idx] = op
        graph = Graph.from_dict(doc["graph"], ops)
        wf = cls(graph.output_node, client=client)
        wf.input_schema = Schema.from_dict(doc["input_schema"])
        wf.graph = graph
        wf._graphs = {tuple((c.name, c.dtype, c.is_list) for c in wf.input_schema): graph}
        return wf

    def __repr__(self) -> str:
        state = "fitted" if self.graph is not None else "not fitted"
        return f"Workflow({' → '.join(op.label for op in self.ops)}; {state})"


def _schema_sum(schemas: list[Schema]) -> Schema:
    out = Schema()
    for s in schemas:
        out = out + Schema([c for c in s if c.name not in out])
    return out


def _schema_of_table(table: Table, fallback: Schema | None) -> Schema:
    from funnel.table import schema_of  # noqa: PLC0415

    return schema_of(table)


def _registered(op: Any) -> bool:
    """Registered by a plugin under a stable name (``module:Class`` names are user code)."""
    if ":" in op.type_name:
        return False
    try:
        return get_operator(op.type_name) is type(op)
    except FunnelError:
        return False


def _load_stats(op: Any, directory: Path, where: str) -> None:
    import pandas as pd  # noqa: PLC0415

    meta = directory / "stats.json"
    try:
        doc = json.loads(meta.read_text())
        arrays: dict[str, Any] = {}
        for name, file in doc.get("files", {}).items():
            f = directory / file
            arrays[name] = np.load(f, allow_pickle=False) if file.endswith(".npy") else pd.read_parquet(f)
        op.set_stats(doc["stats"], arrays)
    except FunnelError:
        raise
    except Exception as exc:
        raise ArtifactError(f"{where}: cannot load statistics from {directory}: {type(exc).__name__}: {exc}") from exc
