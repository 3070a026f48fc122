"""Groupby: interaction rows → one row per group (session), with list and scalar aggregates."""

from __future__ import annotations

from typing import Any

import numpy as np

from funnel.errors import OperatorError, SchemaError
from funnel.schema import ColumnSchema, Schema, Tags
from funnel.selector import ColumnSelector
from funnel.table import Ragged, Table

from funnel_workflow.base import Operator, is_null
from funnel_workflow.ops._util import as_list

__all__ = ["Groupby", "AGGREGATES"]

AGGREGATES = ("list", "count", "first", "last", "min", "max", "mean", "sum")


class Groupby(Operator):
    """Group rows by ``groupby_cols``, ordered within a group by ``sort_cols``; aggregate.

    Output: the group columns, then ``<col><name_sep><agg>`` for each aggregate in ``aggs``
    (``{"item_id": ["list", "count"]}``; a bare string or list applies to every other
    column). Groups come out sorted by key. ``count`` counts non-null values.
    """

    type_name = "workflow.Groupby"
    has_array_path = True
    changes_rows = True

    def __init__(self, groupby_cols: Any, sort_cols: Any = None, aggs: Any = "list", name_sep: str = "_",
                 ascending: bool = True, offline_only: bool = False) -> None:
        self.groupby_cols = as_list(groupby_cols)
        if not self.groupby_cols:
            raise SchemaError("Groupby: groupby_cols is required")
        self.sort_cols = as_list(sort_cols)
        self.aggs = aggs if isinstance(aggs, dict) else as_list(aggs)
        self.name_sep = name_sep
        self.ascending = bool(ascending)
        for col, names in (self.aggs.items() if isinstance(self.aggs, dict) else [("*", self.aggs)]):
            for a in as_list(names):
                if a not in AGGREGATES:
                    raise SchemaError(f"Groupby: unknown aggregate {a!r} for column {col!r}; known: {AGGREGATES}")
        if offline_only:
            self.offline_only = True

    @property
    def shuffle_keys(self) -> list[str]:  # type: ignore[override]
        return self.groupby_cols

    def _plan(self, selected: list[str]) -> list[tuple[str, str, str]]:
        if isinstance(self.aggs, dict):
            items = [(c, as_list(a)) for c, a in self.aggs.items()]
        else:
            items = [(c, list(self.aggs)) for c in selected if c not in self.groupby_cols]
        return [(c, a, f"{c}{self.name_sep}{a}") for c, aggs in items for a in aggs]

    def output_column_names(self, col_selector: ColumnSelector) -> ColumnSelector:
        return ColumnSelector([*self.groupby_cols, *[o for _, _, o in self._plan(list(col_selector.names))]])

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        needed = list(dict.fromkeys([*self.groupby_cols, *self.sort_cols, *[c for c, _, _ in self._plan(selected)]]))
        self.require(input_schema, needed)
        cols = [input_schema[c] for c in self.groupby_cols]
        for c, agg, out in self._plan(selected):
            src = input_schema[c]
            if src.is_list:
                raise SchemaError(f"Groupby: column {c!r} is already a list column; aggregate scalar columns")
            if agg == "list":
                col = ColumnSchema(out, src.dtype, tags=[*src.tags, Tags.LIST], properties=src.properties,
                                   dims=(None,), is_list=True, is_ragged=True)
            elif agg == "count":
                col = ColumnSchema(out, "int64", tags=[Tags.CONTINUOUS])
            elif agg in ("first", "last", "min", "max"):
                col = ColumnSchema(out, src.dtype, tags=src.tags, properties=src.properties)
            elif agg == "mean":
                col = ColumnSchema(out, "float64", tags=[Tags.CONTINUOUS])
            else:  # sum
                self.require(input_schema, [c], dtype_kinds="iufb")
                col = ColumnSchema(out, "float64" if src.numpy_dtype.kind == "f" else "int64", tags=[Tags.CONTINUOUS])
            cols.append(self._decorate(col))
        return cols

    def transform_arrays(self, table: Table) -> Table:
        n = table.num_rows
        keys = [np.asarray(table[c]) for c in self.groupby_cols]
        for c, k in zip(self.groupby_cols, keys):
            null = is_null(k)
            if null.any():
                raise OperatorError(
                    f"Groupby: key column {c!r} has {int(null.sum())} null value(s); fill them (FillMissing) "
                    "or drop those rows upstream"
                )
        sort_vals = [np.asarray(table[c]) for c in self.sort_cols]
        if not self.ascending:
            sort_vals = [-v if v.dtype.kind in "iuf" else v for v in sort_vals]
        # lexsort: last key is primary → group keys first, then sort columns
        order = np.lexsort([*reversed(sort_vals), *reversed(keys)]) if n else np.zeros(0, dtype=np.int64)
        if n:
            sorted_keys = [k[order] for k in keys]
            change = np.zeros(n, dtype=bool)
            change[0] = True
            for k in sorted_keys:
                change[1:] |= k[1:] != k[:-1]
            starts = np.nonzero(change)[0]
        else:
            sorted_keys = [k[:0] for k in keys]
            starts = np.zeros(0, dtype=np.int64)
        ends = np.append(starts[1:], n).astype(np.int64)
        lengths = ends - starts
        offsets = np.zeros(starts.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        out: dict[str, Any] = {c: k[starts] for c, k in zip(self.groupby_cols, sorted_keys)}
        for c, agg, name in self._plan(self.input_columns):
            col = table[c]
            if isinstance(col, Ragged):
                raise OperatorError(f"Groupby: column {c!r} is a list column; aggregate scalar columns")
            v = np.asarray(col)[order]
            if agg == "list":
                out[name] = Ragged(v, offsets, validate=False)
            elif agg == "count":
                valid = (~is_null(v)).astype(np.int64)
                out[name] = np.add.reduceat(valid, starts) if starts.size else np.zeros(0, dtype=np.int64)
            elif agg == "first":
                out[name] = v[starts]
            elif agg == "last":
                out[name] = v[ends - 1] if ends.size else v[:0]
            elif agg in ("min", "max", "sum", "mean"):
                out[name] = _reduce(v, agg, starts, c)
        return Table(out, num_rows=int(starts.size))

    def to_config(self) -> dict[str, Any]:
        return {"groupby_cols": self.groupby_cols, "sort_cols": self.sort_cols, "aggs": self.aggs,
                "name_sep": self.name_sep, "ascending": self.ascending, **self.base_config()}


def _reduce(v: np.ndarray, agg: str, starts: np.ndarray, column: str) -> np.ndarray:
    if not starts.size:
        return v[:0].astype(np.float64) if agg == "mean" else v[:0]
    if v.dtype.kind == "O":
        raise OperatorError(f"Groupby: {agg} of string column {column!r} is not supported")
    if agg == "min":
        return np.minimum.reduceat(v, starts)
    if agg == "max":
        return np.maximum.reduceat(v, starts)
    if agg == "sum":
        return np.add.reduceat(np.nan_to_num(v) if v.dtype.kind == "f" else v.astype(np.int64), starts)
    f = v.astype(np.float64)
    valid = ~np.isnan(f)
    total = np.add.reduceat(np.where(valid, f, 0.0), starts)
    count = np.add.reduceat(valid.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count
