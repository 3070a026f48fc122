"""Array helpers shared by the built-in operators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from funnel.table import Ragged, to_numpy

__all__ = ["values_of", "rewrap", "map_values", "hash64", "as_list", "per_column"]


def values_of(col: Any) -> np.ndarray:
    """The element values of a column (a Ragged's flat values, else the array)."""
    return to_numpy(col.values) if isinstance(col, Ragged) else to_numpy(col)


def rewrap(col: Any, values: np.ndarray) -> Any:
    """``values`` shaped like ``col`` (same offsets for a Ragged)."""
    return Ragged(values, col.offsets, validate=False) if isinstance(col, Ragged) else values


def map_values(col: Any, fn: Callable[[np.ndarray], np.ndarray]) -> Any:
    """Apply an element-wise function to a scalar or list column."""
    return rewrap(col, fn(values_of(col)))


def hash64(values: np.ndarray) -> np.ndarray:
    """A deterministic 64-bit hash of each value (splitmix64 for integers; pandas' hash_array
    of the text for anything else). Stable across processes and machines."""
    if values.dtype.kind in "iub":
        x = values.astype(np.int64).view(np.uint64).copy()
        with np.errstate(over="ignore"):
            x += np.uint64(0x9E3779B97F4A7C15)
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            x = x ^ (x >> np.uint64(31))
        return x
    import pandas as pd  # noqa: PLC0415

    if values.dtype.kind == "f":
        return hash64(values.view(np.int64) if values.dtype == np.float64 else values.astype(np.float64).view(np.int64))
    return np.asarray(pd.util.hash_array(values.astype(str).astype(object), categorize=False), dtype=np.uint64)


def as_list(value: Any) -> list[Any]:
    """``value`` as a list (None → [], a scalar → [value])."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def per_column(value: Any, column: str, default: Any = None) -> Any:
    """A setting that is either one value or a dict column → value."""
    if isinstance(value, dict):
        return value.get(column, default)
    return default if value is None else value
