"""ItemRecency: how many days old an item is, from a timestamp column."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from funnel import ColumnSchema, Operator, Schema, SchemaError, Table

__all__ = ["ItemRecency"]

_SECONDS_PER_DAY = 86400


def _unix_seconds(value: float | int | str | dt.datetime) -> float:
    """A reference time as Unix seconds (naive datetimes and ISO strings are read as UTC)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise SchemaError(
                f"ItemRecency: reference_time {value!r} is not an ISO-8601 time such as '2024-05-01T00:00:00'"
            ) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if math.isfinite(float(value)):
            return float(value)
    raise SchemaError(
        f"ItemRecency: reference_time must be Unix seconds, a datetime or an ISO-8601 string, got {value!r}"
    )


class ItemRecency(Operator):
    """Age in whole days of each item, relative to a fixed ``reference_time``.

    Every input column is a timestamp (Unix seconds as int/float, or numpy ``datetime64``),
    e.g. when an item was first seen. For each column ``c`` the output has ``c + suffix``
    (int32): ``floor((reference_time - c) / 1 day)``, and 0 for timestamps after the
    reference time. Row-wise, so it works on per-request columns and on candidate-aligned
    list columns (after ``UnrollFeatures``) alike.

    ``item_features[["first_seen"]] >> ItemRecency(reference_time="2024-05-01")``
    """

    type_name = "example.ItemRecency"
    rowwise = True

    def __init__(self, reference_time: float | int | str | dt.datetime, suffix: str = "_age_days") -> None:
        self.reference_time = _unix_seconds(reference_time)
        if not isinstance(suffix, str) or not suffix:
            raise SchemaError(f"ItemRecency: suffix must be a non-empty string, got {suffix!r}")
        self.suffix = suffix

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        if not len(input_schema):
            raise SchemaError("ItemRecency: no input columns; select the timestamp column(s) upstream")
        columns = self.require(input_schema, input_schema.column_names, dtype_kinds="iufM")
        return Schema([ColumnSchema(c.name + self.suffix, "int32", dims=c.dims) for c in columns])

    def transform(self, table: Table) -> Table:
        out = {}
        for name, col in table.items():
            values = np.asarray(col)
            if values.dtype.kind == "M":
                seconds = values.astype("datetime64[s]").astype(np.float64)
            else:
                seconds = values.astype(np.float64)
            days = np.floor((self.reference_time - seconds) / _SECONDS_PER_DAY)
            out[name + self.suffix] = np.maximum(days, 0).astype(np.int32)
        return Table(out, num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        return {"reference_time": self.reference_time, "suffix": self.suffix}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ItemRecency:
        return cls(config["reference_time"], config.get("suffix", "_age_days"))
