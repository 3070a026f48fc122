"""Small column operators to adapt a graph without writing a plugin: Cast, Select, Rename."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import numpy as np

from funnel.casting import cast_lossless, check_castable
from funnel.errors import SchemaError
from funnel.operator import Operator
from funnel.schema import Schema, normalize_dtype
from funnel.table import Ragged, Table

__all__ = ["Cast", "AsType", "Select", "Rename"]


def strict_config(**fields: Any) -> type[msgspec.Struct]:
    """A built-in operator's ``Config``: every field required, no unknown key (checked when an export loads)."""
    return msgspec.defstruct("Config", list(fields.items()), forbid_unknown_fields=True)


class Cast(Operator):
    """Cast columns losslessly: ``Cast({"item_id": "int32"})``; a value that would change is a SchemaError.

    Allowed casts (``funnel.casting``), list columns: docs/reference/builtin-ops.md.
    """

    type_name = "funnel.Cast"
    Config = strict_config(dtypes=dict[str, str])

    def __init__(self, dtypes: Mapping[str, str]) -> None:
        if not isinstance(dtypes, Mapping) or not dtypes:
            raise SchemaError(f"Cast: dtypes must be a non-empty mapping column → dtype, got {dtypes!r}")
        self.dtypes = {str(k): normalize_dtype(v) for k, v in dtypes.items()}

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        for col in self.require(input_schema, list(self.dtypes)):
            want = self.dtypes[col.name]
            if col.dtype == "str" or want == "str" or not check_castable(col.numpy_dtype, np.dtype(want)):
                raise SchemaError(f"{self.label}: column {col.name!r} has dtype {col.dtype}, which cannot be cast to "
                                  f"{want} without losing values (allowed: integer ↔ integer, bool → number, integer "
                                  "→ float, float → float)")
        return Schema([col.with_dtype(self.dtypes[col.name]) if col.name in self.dtypes else col
                       for col in input_schema])

    def transform(self, table: Table) -> Table:
        out: dict[str, Any] = dict(table.items())
        for name in [n for n in out if n in self.dtypes]:
            col = out[name]
            values = cast_lossless(col.values if isinstance(col, Ragged) else col, self.dtypes[name], column=name,
                                   where=self.label)
            out[name] = Ragged(values, col.offsets, validate=False) if isinstance(col, Ragged) else values
        return Table(out, num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        return {"dtypes": dict(self.dtypes)}


class AsType(Cast):
    """Alias of :class:`Cast` (the NVTabular/pandas name)."""

    type_name = "funnel.AsType"


class Select(Operator):
    """Keep only the named columns, in that order (``node["a", "b"]`` without the brackets)."""

    type_name = "funnel.Select"
    Config = strict_config(columns=list[str])

    def __init__(self, columns: Iterable[str]) -> None:
        names = [columns] if isinstance(columns, str) else list(columns)
        if not names or not all(isinstance(n, str) for n in names):
            raise SchemaError(f"Select: columns must be a non-empty list of names, got {columns!r}")
        self.columns = names

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        return Schema(self.require(input_schema, self.columns))

    def transform(self, table: Table) -> Table:
        return table.select(self.columns)

    def to_config(self) -> dict[str, Any]:
        return {"columns": list(self.columns)}


class Rename(Operator):
    """Rename columns: ``Rename({"output_0": "score"})``; other columns pass through."""

    type_name = "funnel.Rename"
    Config = strict_config(mapping=dict[str, str])

    def __init__(self, mapping: Mapping[str, str]) -> None:
        if not isinstance(mapping, Mapping) or not mapping:
            raise SchemaError(f"Rename: mapping must be a non-empty mapping old → new name, got {mapping!r}")
        self.mapping = {str(k): str(v) for k, v in mapping.items()}

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        self.require(input_schema, list(self.mapping))
        names = [self.mapping.get(c.name, c.name) for c in input_schema]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SchemaError(f"Rename: the renamed columns would repeat name(s) {dup}; drop or rename the others")
        return Schema([c.with_name(self.mapping.get(c.name, c.name)) for c in input_schema])

    def transform(self, table: Table) -> Table:
        return Table({self.mapping.get(k, k): v for k, v in table.items()}, num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        return {"mapping": dict(self.mapping)}
