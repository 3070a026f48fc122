"""FilterCandidates: drop candidates a request row must not see (e.g. already seen items)."""

from __future__ import annotations

from typing import Any

import numpy as np

from funnel.errors import SchemaError
from funnel.operator import Dependency, Operator
from funnel.ops.columns import strict_config
from funnel.schema import Schema
from funnel.table import Ragged, Table, like, schema_of, to_numpy

__all__ = ["FilterCandidates"]


class FilterCandidates(Operator):
    """Remove, per request row, the candidates of ``input_col`` listed in that row's ``filter_out``.

    Aligned list columns are filtered alike, per-row columns pass through: docs/reference/builtin-ops.md.
    """

    type_name = "funnel.FilterCandidates"
    Config = strict_config(filter_out=str, input_col=str | None)

    def __init__(self, filter_out: Any, input_col: str | None = None) -> None:
        self.filter_out = Dependency(filter_out)
        self.input_col = input_col

    def _input_col(self, schema: Schema) -> str:
        if self.input_col is not None:
            return self.input_col
        filt = set(self.filter_out.columns or [])
        lists = [c.name for c in schema if c.is_list and c.name not in filt]
        if len(lists) != 1:
            raise SchemaError(f"FilterCandidates: cannot tell which column holds the candidates among {lists}; "
                              "pass input_col='...'")
        return lists[0]

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        name = self._input_col(input_schema)
        (cand,) = self.require(input_schema, [name], list_column=True)
        (filt,) = self.require(input_schema, [self.filter_out.column])
        kinds = {cand.numpy_dtype.kind, filt.numpy_dtype.kind}
        if len(kinds) > 1 and kinds - set("iu"):
            raise SchemaError(f"FilterCandidates: candidates {name!r} ({cand.dtype}) and filter column "
                              f"{filt.name!r} ({filt.dtype}) hold different kinds of ids")
        return Schema([col.with_shape((None, *col.dims[1:])) if col.is_list else col
                       for col in input_schema if col.name != filt.name])

    def transform(self, table: Table) -> Table:
        name = self.input_col or self._input_col(
            Schema([c.as_list() if getattr(table[c.name], "ndim", 1) == 2 else c for c in schema_of(table)]))
        cand = Ragged.coerce(table[name], f"FilterCandidates: column {name!r}")
        filt = table[self.filter_out.column]
        if not isinstance(filt, Ragged):
            filt = Ragged.from_dense(np.asarray(to_numpy(filt)).reshape(table.num_rows, -1))
        keep, row_of = _keep_mask(cand, filt)
        if row_of is None:  # one request row: no per-row bookkeeping needed
            new_off = np.array([0, int(np.count_nonzero(keep))], dtype=np.int64)
        else:
            new_off = np.zeros(cand.num_rows + 1, dtype=np.int64)
            np.cumsum(np.bincount(row_of[keep], minlength=cand.num_rows), out=new_off[1:])
        out: dict[str, Any] = {}
        for col_name, col in table.items():
            if col_name == self.filter_out.column:
                continue
            if isinstance(col, Ragged) or col_name == name:
                col = Ragged.coerce(col, f"FilterCandidates: column {col_name!r}")
                if not col.same_offsets(cand):
                    raise SchemaError(f"FilterCandidates: list column {col_name!r} is not aligned with "
                                      f"candidates {name!r}")
                values = col.values[like(keep, col.values)]  # stays on the column's device
                col = Ragged(values, like(new_off, values), validate=False)
            out[col_name] = col
        return Table(out, num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        return {"filter_out": self.filter_out.column, "input_col": self.input_col}


def _keep_mask(cand: Ragged, filt: Ragged) -> tuple[np.ndarray, np.ndarray | None]:
    """Boolean mask over candidate values (True where the id is not in its row's filter list)
    and the request row of each candidate (``None`` for a single-row batch)."""
    cv, fv = to_numpy(cand.values), to_numpy(filt.values)
    if cand.num_rows == 1:  # the common online case: one user
        if not fv.size or not cv.size:
            return np.ones(cv.size, dtype=bool), None
        return _isin_not(cv, fv), None
    co, fo = to_numpy(cand.offsets).astype(np.int64), to_numpy(filt.offsets).astype(np.int64)
    crow = np.repeat(np.arange(co.size - 1), np.diff(co))
    if cv.size == 0 or fv.size == 0:
        return np.ones(cv.size, dtype=bool), crow
    if cv.dtype.kind in "iu" and fv.dtype.kind in "iu":
        frow = np.repeat(np.arange(fo.size - 1), np.diff(fo))
        lo = min(int(cv.min()), int(fv.min()))
        span = max(int(cv.max()), int(fv.max())) - lo + 1
        if span * (co.size) < 2**62:
            ckey = crow * span + (cv.astype(np.int64) - lo)
            fkey = frow * span + (fv.astype(np.int64) - lo)
            return _isin_not(ckey, fkey), crow
    keep = np.ones(cv.size, dtype=bool)
    for r in range(co.size - 1):
        keep[co[r]:co[r + 1]] = np.isin(cv[co[r]:co[r + 1]], fv[fo[r]:fo[r + 1]], invert=True)
    return keep, crow


def _isin_not(values: np.ndarray, remove: np.ndarray) -> np.ndarray:
    """``~np.isin(values, remove)``, with a lookup table when integer ids span a small range
    (several times faster than sorting for the few hundred candidates of a request)."""
    if values.dtype.kind in "iu" and remove.dtype.kind in "iu":
        lo = min(int(values.min()), int(remove.min()))
        span = max(int(values.max()), int(remove.max())) - lo + 1
        if span <= max(4 * (values.size + remove.size), 1 << 20):  # at most a 1 MiB table
            table = np.ones(span, dtype=bool)
            table[remove.astype(np.int64) - lo] = False
            return table[values.astype(np.int64) - lo]
    return np.isin(values, remove, invert=True)
