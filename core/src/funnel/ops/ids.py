"""Unknown ids, handled per row: KnownIds marks and masks them, Fallback answers those rows.

An unknown id must never reach an embedding lookup: negative ids index from the end, large ids fail
the whole batch inside the backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from funnel.casting import cast_lossless
from funnel.errors import SchemaError
from funnel.operator import Dependency, Operator
from funnel.ops.columns import strict_config
from funnel.schema import ColumnSchema, Schema
from funnel.table import Ragged, Table, like, to_numpy

__all__ = ["KnownIds", "Fallback"]


class KnownIds(Operator):
    """Flag per row in ``flag_col`` whether ``column``'s id is known, and replace unknown ids by ``fill``.

    Known: inside ``valid_range`` ``[low, high)`` and, with ``found_col``, that bool column True. Never raises
    for an id value (docs/reference/builtin-ops.md).

    ``checked = user_features >> KnownIds("user_id", found_col="user_features_found", fill=0)``
    """

    type_name = "funnel.KnownIds"
    Config = strict_config(column=str, found_col=str | None, valid_range=list[int] | None, fill=int, flag_col=str)

    def __init__(self, column: str, found_col: str | None = None, valid_range: Sequence[int] | None = None,
                 fill: int = 0, flag_col: str = "known") -> None:
        if valid_range is not None:
            valid_range = [int(v) for v in valid_range]
            if len(valid_range) != 2 or valid_range[0] >= valid_range[1]:
                raise SchemaError(f"KnownIds: valid_range must be [low, high) with low < high, got {valid_range}")
            if not valid_range[0] <= int(fill) < valid_range[1]:
                raise SchemaError(f"KnownIds: fill={fill} must itself be a valid id in {valid_range}")
        if found_col is None and valid_range is None:
            raise SchemaError("KnownIds: give found_col (a bool 'found' column), valid_range, or both")
        self.column, self.found_col, self.valid_range = column, found_col, valid_range
        self.fill, self.flag_col = int(fill), flag_col

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        self.require(input_schema, [self.column], dtype_kinds="iu", list_column=False)
        if self.found_col is not None:
            self.require(input_schema, [self.found_col], dtype_kinds="b", list_column=False)
        if self.flag_col in input_schema and self.flag_col != self.found_col:
            raise SchemaError(f"KnownIds: flag column {self.flag_col!r} already exists upstream; pass flag_col=...")
        return Schema([*(c for c in input_schema if c.name != self.found_col), ColumnSchema(self.flag_col, "bool")])

    def transform(self, table: Table) -> Table:
        ids = table[self.column]
        host = to_numpy(ids)
        known = np.ones(host.shape[0], dtype=bool)
        if self.valid_range is not None:
            low, high = self.valid_range
            known &= (host >= low) & (host < high)
        if self.found_col is not None:
            known &= to_numpy(table[self.found_col]).astype(bool).reshape(-1)
        masked = host if known.all() else np.where(known, host, np.asarray(self.fill, dtype=host.dtype))
        out = {k: v for k, v in table.items() if k != self.found_col}
        out[self.column] = like(masked, ids)
        out[self.flag_col] = known
        return Table(out, num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        return {"column": self.column, "found_col": self.found_col, "valid_range": self.valid_range,
                "fill": self.fill, "flag_col": self.flag_col}


class Fallback(Operator):
    """Answer the rows whose ``flag`` is False with fixed ``values``; say so in ``flag_output``.

    ``values`` covers every upstream column, so no row mixes a model's answer with filler
    (docs/reference/builtin-ops.md).

    ``final = ordering >> Fallback(checked["known"], {"ordered_ids": popular[:10], ...})``
    """

    type_name = "funnel.Fallback"
    Config = strict_config(flag=str, values=dict[str, Any], flag_output=str)

    def __init__(self, flag: Any, values: Mapping[str, Any], flag_output: str = "fallback") -> None:
        if not isinstance(values, Mapping) or not values:
            raise SchemaError("Fallback: values must map every output column to its fallback value")
        self.flag = Dependency(flag)
        self.values = {str(k): v.tolist() if isinstance(v, np.ndarray) else v for k, v in values.items()}
        self.flag_output = flag_output
        self._arrays: dict[str, np.ndarray] = {}

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        flag = self.flag.column
        self.require(input_schema, [flag], dtype_kinds="b", list_column=False)
        cols = [c for c in input_schema if c.name != flag]
        missing = [c.name for c in cols if c.name not in self.values]
        unknown = sorted(set(self.values) - {c.name for c in cols})
        if missing or unknown:
            raise SchemaError(f"Fallback: values must name exactly the upstream columns {[c.name for c in cols]}; "
                              f"missing {missing}, not upstream {unknown}")
        arrays = {}
        for col in cols:
            if col.is_ragged or col.dtype == "str":
                raise SchemaError(f"Fallback: column {col.name!r} ({col!r}) must be numeric, one value or a fixed-size "
                                  "list per row")
            raw = np.asarray(self.values[col.name])
            if raw.shape != tuple(col.dims):
                raise SchemaError(f"Fallback: the value for {col.name!r} has shape {raw.shape}; the column holds "
                                  f"{tuple(col.dims)} per row")
            if raw.dtype.kind == "b" and col.numpy_dtype.kind != "b":
                raw = raw.astype(np.int64)
            arrays[col.name] = cast_lossless(raw, col.numpy_dtype, column=col.name, where="Fallback")
        self._arrays = arrays
        if self.flag_output in {c.name for c in cols}:
            raise SchemaError(f"Fallback: flag_output {self.flag_output!r} is already an upstream column")
        return Schema([*cols, ColumnSchema(self.flag_output, "bool")])

    def transform(self, table: Table) -> Table:
        flag = self.flag.column
        use = ~to_numpy(table[flag]).astype(bool).reshape(-1)
        out: dict[str, Any] = {}
        for name, col in table.items():
            if name == flag:
                continue
            if isinstance(col, Ragged):
                raise SchemaError(f"Fallback: column {name!r} is a list column of varying length; give fixed-size "
                                  "columns")
            if use.any():
                host = np.array(to_numpy(col), copy=True)
                host[use] = self._arrays[name]
                col = like(host, col)
            out[name] = col
        out[self.flag_output] = use
        return Table(out, num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        return {"flag": self.flag.column, "values": dict(self.values), "flag_output": self.flag_output}
