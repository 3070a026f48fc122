"""UnrollFeatures: repeat per-request-row columns once per candidate."""

from __future__ import annotations

from typing import Any

import numpy as np

from funnel.errors import SchemaError
from funnel.operator import Dependency, Operator
from funnel.ops.columns import strict_config
from funnel.schema import Schema
from funnel.table import Ragged, Table, like, to_numpy

__all__ = ["UnrollFeatures"]


class UnrollFeatures(Operator):
    """Make every column candidate-aligned: ``unroll_cols`` repeated per candidate of ``item_id_col``.

    ``combined = item_features >> UnrollFeatures("item_id", user_features[user_cols])``; docs/reference/builtin-ops.md
    """

    type_name = "funnel.UnrollFeatures"
    Config = strict_config(item_id_col=str, unroll_cols=list[str], unrolled_prefix=str)

    def __init__(self, item_id_col: str, unroll_cols: Any, unrolled_prefix: str = "") -> None:
        if not isinstance(item_id_col, str):
            raise SchemaError(f"UnrollFeatures: item_id_col must be a column name, got {item_id_col!r}")
        self.item_id_col = item_id_col
        self.unroll_cols = Dependency(unroll_cols)
        self.unrolled_prefix = unrolled_prefix

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        self.require(input_schema, [self.item_id_col], list_column=True)
        unroll = self.require(input_schema, self.unroll_cols.columns or [])
        names = {c.name for c in unroll}
        out = []
        for col in input_schema:
            if col.name in names:
                continue
            if not col.is_list:
                raise SchemaError(f"UnrollFeatures: upstream column {col.name!r} is not a list column; per-row "
                                  "columns must be passed as unroll_cols, candidate columns must be lists")
            out.append(col if col.is_ragged else col.with_shape((None, *col.dims[1:])))
        for col in unroll:
            if col.is_list and col.is_ragged:
                raise SchemaError(f"UnrollFeatures: unroll column {col.name!r} is a ragged list per row; only scalar "
                                  "or fixed-shape per-row columns can be repeated per candidate")
            new_name = self.unrolled_prefix + col.name
            if new_name in [c.name for c in out]:
                raise SchemaError(f"UnrollFeatures: unrolled column {new_name!r} clashes with a candidate column; "
                                  "set unrolled_prefix")
            out.append(col.with_name(new_name).as_list())
        return Schema(out)

    def transform(self, table: Table) -> Table:
        unroll = self.unroll_cols.columns or []
        ids = Ragged.coerce(table[self.item_id_col], f"UnrollFeatures: column {self.item_id_col!r}")
        out: dict[str, Any] = {}
        for name, col in table.items():
            if name in unroll:
                continue
            col = Ragged.coerce(col, f"UnrollFeatures: column {name!r}")
            if not ids.same_offsets(col):
                raise SchemaError(f"UnrollFeatures: column {name!r} has a different number of entries per row than "
                                  f"{self.item_id_col!r}; candidate features must align with the candidate ids")
            out[name] = Ragged(col.values, like(ids.offsets, col.values), validate=False)
        lengths = to_numpy(ids.lengths)
        gather = None
        for name in unroll:
            col = table[name]
            if type(col) is np.ndarray:
                rep = np.repeat(col, lengths, axis=0)
            else:  # cupy / torch: gather on the column's own device
                if gather is None:  # candidate row → request row
                    gather = np.repeat(np.arange(lengths.size), lengths)
                rep = col[like(gather, col)]
            out[self.unrolled_prefix + name] = Ragged(rep, like(ids.offsets, rep), validate=False)
        return Table(out, num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        return {"item_id_col": self.item_id_col, "unroll_cols": list(self.unroll_cols.columns or []),
                "unrolled_prefix": self.unrolled_prefix}
