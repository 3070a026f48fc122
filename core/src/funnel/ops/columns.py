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


def _config_error(op: str, what: str) -> SchemaError:
    return SchemaError(f"{op}: {what}")


class Cast(Operator):
    """Cast columns to other dtypes, losslessly: ``Cast({"item_id": "int32"})``.

    Every value is checked at run time (``funnel.casting``): an int64 id that does not fit
    int32, or a float that is not a whole number, raises a SchemaError naming the column —
    nothing is wrapped or truncated. Allowed at build time: integer ↔ integer, bool → number,
    integer → float, float → float. List columns (candidate-aligned ones included) are cast
    element-wise, next to scalar columns. Columns not named pass through unchanged.
    """

    type_name = "funnel.Cast"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """What ``to_config`` writes; checked strictly when an export is loaded."""

        dtypes: dict[str, str]

    def __init__(self, dtypes: Mapping[str, str]) -> None:
        if not isinstance(dtypes, Mapping) or not dtypes:
            raise _config_error("Cast", f"dtypes must be a non-empty mapping column → dtype, got {dtypes!r}")
        self.dtypes = {str(k): normalize_dtype(v) for k, v in dtypes.items()}

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        cols = self.require(input_schema, list(self.dtypes))
        for col in cols:
            want = self.dtypes[col.name]
            if col.dtype == "str" or want == "str" or not check_castable(col.numpy_dtype, np.dtype(want)):
                raise SchemaError(
                    f"{self.label}: column {col.name!r} has dtype {col.dtype}, which cannot be cast to {want} without "
                    "losing values (allowed: integer ↔ integer, bool → number, integer → float, float → float)"
                )
        return Schema([col.with_dtype(self.dtypes[col.name]) if col.name in self.dtypes else col
                       for col in input_schema])

    def transform(self, table: Table) -> Table:
        out: dict[str, Any] = {}
        for name, col in table.items():
            want = self.dtypes.get(name)
            if want is None:
                out[name] = col
            elif isinstance(col, Ragged):
                out[name] = Ragged(cast_lossless(col.values, want, column=name, where=self.label), col.offsets, validate=False)
            else:
                out[name] = cast_lossless(col, want, column=name, where=self.label)
        return Table(out, num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        return {"dtypes": dict(self.dtypes)}


class AsType(Cast):
    """Alias of :class:`Cast` (the NVTabular/pandas name)."""

    type_name = "funnel.AsType"


class Select(Operator):
    """Keep only the named columns, in that order (``node["a", "b"]`` without the brackets)."""

    type_name = "funnel.Select"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """What ``to_config`` writes; checked strictly when an export is loaded."""

        columns: list[str]

    def __init__(self, columns: Iterable[str]) -> None:
        names = [columns] if isinstance(columns, str) else list(columns)
        if not names or not all(isinstance(n, str) for n in names):
            raise _config_error("Select", f"columns must be a non-empty list of names, got {columns!r}")
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

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """What ``to_config`` writes; checked strictly when an export is loaded."""

        mapping: dict[str, str]

    def __init__(self, mapping: Mapping[str, str]) -> None:
        if not isinstance(mapping, Mapping) or not mapping:
            raise _config_error("Rename", f"mapping must be a non-empty mapping old → new name, got {mapping!r}")
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
