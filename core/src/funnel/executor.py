"""Run a bound graph on a Table, in-process: every node once per call."""

from __future__ import annotations

from typing import Any

from funnel.casting import cast_lossless
from funnel.errors import FunnelError, OperatorError, RequestError, SchemaError
from funnel.graph import BoundNode, Graph
from funnel.schema import Schema
from funnel.table import Ragged, Table

__all__ = ["LocalExecutor", "validate_request", "apply_operator", "run_lifted"]


def validate_request(table: Table, schema: Schema) -> Table:
    """``table`` checked against the request schema and restricted to it (other columns are dropped); a
    RequestError names a missing column, a list/scalar mismatch or a dtype not losslessly castable."""
    missing = [n for n in schema.column_names if n not in table]
    if missing:
        raise RequestError(f"request is missing column(s) {missing}; the graph expects {schema.column_names}")
    out: dict[str, Any] = {}
    for col in schema:
        value = table[col.name]
        if col.is_list and col.is_ragged and not isinstance(value, Ragged):
            if getattr(value, "ndim", 0) < 2:
                raise RequestError(f"request column {col.name!r} must be a list column (one list per row)")
            value = Ragged.from_dense(value)
        if not col.is_list and isinstance(value, Ragged):
            raise RequestError(f"request column {col.name!r} must hold one value per row, got lists")
        arr = value.values if isinstance(value, Ragged) else value
        want, kind = col.numpy_dtype, getattr(arr.dtype, "kind", None)
        if want.kind == "O":
            if kind not in ("O", "U", "S"):
                raise RequestError(f"request column {col.name!r} must hold strings, got {arr.dtype}")
        elif kind in ("O", "U", "S"):
            raise RequestError(f"request column {col.name!r} must be {col.dtype}, got strings")
        elif str(arr.dtype).replace("torch.", "") != want.name:
            # the one casting rule (funnel.casting): lossless, range-checked, else RequestError
            arr = cast_lossless(arr, want, column=col.name, where="request", error=RequestError)
            value = Ragged(arr, value.offsets, validate=False) if isinstance(value, Ragged) else arr
        out[col.name] = value
    return Table(out, num_rows=table.num_rows)


class LocalExecutor:
    """Runs a :class:`funnel.graph.Graph` in the current process: each node once per call, its output
    shared by every consumer (Merlin recomputed shared upstream steps per consumer)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        # per node, resolved once (not per request): parent result indices and column names
        self._plan = [
            (b, [graph.bound(p).index for p in b.node.parents], b.input_schema.column_names,
             b.output_schema.column_names)
            for b in graph.nodes
        ]
        self._output_index = graph.bound(graph.output_node).index

    def transform(self, table: Table, validate: bool = True) -> Table:
        """Run the graph on a request table; returns the output node's columns."""
        if validate:
            table = validate_request(table, self.graph.request_schema)
        results: dict[int, Table] = {}
        for bound, parents, in_names, out_names in self._plan:
            results[bound.index] = self._run_node(bound, table, [results[i] for i in parents], in_names, out_names)
        return results[self._output_index]

    def _run_node(self, bound: BoundNode, request: Table, parents: list[Table], in_names: list[str],
                  out_names: list[str]) -> Table:
        kind = bound.node.kind
        if kind in ("select", "drop"):
            return (parents[0] if parents else request).select(out_names)
        merged = parents[0]  # concat, or an op's upstream columns and then its dependencies'
        for t in parents[1:]:
            merged = merged.with_columns(t)
        if kind == "concat":
            return merged.select(out_names)
        if merged.column_names != in_names:
            merged = merged.select(in_names)
        return apply_operator(bound.node.op, merged, bound.lifted, out_names, f"node {bound.index}")


def apply_operator(op: Any, inputs: Table, lifted: bool, out_names: list[str], where: str = "") -> Table:
    """Run one operator (over candidate lists when ``lifted``) and check it returned the promised columns,
    one row per request row; a backend error becomes OperatorError naming the operator and ``where``."""
    try:
        out = run_lifted(op, inputs) if lifted else op.transform(inputs)
    except FunnelError:
        raise
    except Exception as exc:
        at = f" ({where})" if where else ""
        raise OperatorError(f"{op.label}{at} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, Table):
        raise SchemaError(f"{op.label}.transform must return a Table, got {type(out).__name__}")
    missing = [c for c in out_names if c not in out]
    if missing:
        raise SchemaError(f"{op.label}.transform did not return column(s) {missing} promised by its output schema")
    if out.num_rows != inputs.num_rows and inputs.num_rows and not getattr(op, "changes_rows", False):
        raise SchemaError(f"{op.label}.transform returned {out.num_rows} rows for {inputs.num_rows} request rows; "
                          "operators must return one row per request row (candidates go in list columns)")
    return out if out.column_names == out_names else out.select(out_names)


def run_lifted(op: Any, table: Table) -> Table:
    """Run a row-wise operator over candidate-aligned list columns (docs/architecture.md)."""
    first: Ragged | None = None
    for name, col in table.items():
        if not isinstance(col, Ragged):
            raise SchemaError(f"{op.label}: column {name!r} must be a list column like the others")
        if first is None:
            first = col
        elif not first.same_offsets(col):
            raise SchemaError(f"{op.label}: list columns {table.column_names[0]!r} and {name!r} are not aligned "
                              "(different list lengths per row); unroll them with UnrollFeatures first")
    offsets, n_values = (first.offsets, first.values.shape[0]) if first is not None else (None, 0)
    out = op.transform(Table({name: col.values for name, col in table.items()}))
    if not isinstance(out, Table):
        raise SchemaError(f"{op.label}.transform must return a Table, got {type(out).__name__}")
    wrapped: dict[str, Any] = {}
    for k, v in out.items():
        if isinstance(v, Ragged):
            raise SchemaError(f"{op.label} (row-wise over candidate lists) returned list column {k!r}; a row-wise "
                              "operator returns one value per candidate row")
        n = int(v.shape[0]) if getattr(v, "ndim", 0) else -1
        if n != n_values:
            raise SchemaError(f"{op.label} (row-wise over candidate lists) returned {n} values in column {k!r} for "
                              f"{n_values} candidate rows; a row-wise operator returns exactly one row per "
                              "candidate row")
        wrapped[k] = Ragged(v, offsets, validate=False)  # same length as the aligned inputs: offsets fit
    return Table(wrapped, num_rows=table.num_rows)
