"""How a funnel Table travels as Triton tensors (shared by the exporter, runtime and client).

Every tensor carries a leading dimension of 1: one Triton "batch item" is one request
table. Dense columns travel as ``<col>`` with shape ``[1, rows, ...]``; ragged list columns
as ``<col>__values`` (``[1, n_values, ...]``) and ``<col>__offsets`` (``[1, rows + 1]``,
INT64). Triton checks that the first dimension of every input agrees; values and offsets
of a ragged column have other lengths than the row count, so the request rows cannot be
Triton's batch dimension (verified: "batch size does not match other inputs", even with
``allow_ragged_batch``). docs/serving.md records the choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from funnel.errors import RequestError, SchemaError
from funnel.schema import ColumnSchema, Schema
from funnel.table import Ragged, Table

__all__ = [
    "VALUES",
    "OFFSETS",
    "OUTPUT_PREFIX",
    "TensorSpec",
    "tensor_specs",
    "triton_dtype",
    "encode_table",
    "decode_table",
]

VALUES = "__values"
OFFSETS = "__offsets"
#: ensemble-mode outputs whose tensor name equals a request tensor's carry this prefix
#: (a Triton ensemble has one tensor namespace; an output may not reuse an input's name)
OUTPUT_PREFIX = "out__"

_TRITON_DTYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "str": "BYTES",
}


def bytes_to_text(arr: np.ndarray) -> np.ndarray:
    """A BYTES tensor (object array of ``bytes``) as an object array of ``str`` (UTF-8)."""
    if arr.dtype != object or not arr.size:
        return arr
    return np.vectorize(lambda v: v.decode("utf-8") if isinstance(v, bytes) else v, otypes=[object])(arr)


_FUNNEL_DTYPES = {v: k for k, v in _TRITON_DTYPES.items()}


def funnel_dtype(triton: str) -> str | None:
    """The funnel dtype name (``"int64"``, ``"str"``...) of a Triton wire dtype, or None."""
    return _FUNNEL_DTYPES.get(triton)


def triton_dtype(dtype: str) -> str:
    """Triton's wire dtype (``"FP32"``, ``"BYTES"``...) for a funnel dtype name."""
    try:
        return _TRITON_DTYPES[dtype]
    except KeyError:
        raise SchemaError(f"dtype {dtype!r} has no Triton tensor type; cast the column to a numeric dtype") from None


class TensorSpec:
    """One tensor of the wire format: name, Triton dtype, dims (``-1`` = variable)."""

    __slots__ = ("name", "dtype", "dims", "column", "part")

    def __init__(self, name: str, dtype: str, dims: tuple[int, ...], column: str, part: str) -> None:
        self.name = name
        self.dtype = dtype
        #: dims after the leading request dimension of 1 (what config.pbtxt declares)
        self.dims = dims
        self.column = column
        #: "dense", "values" or "offsets"
        self.part = part

    def __repr__(self) -> str:
        return f"TensorSpec({self.name}, {self.dtype}, {list(self.dims)})"


def _dims(dims: Iterable[int | None]) -> tuple[int, ...]:
    return tuple(-1 if d is None else int(d) for d in dims)


def column_specs(col: ColumnSchema, prefix: str = "") -> list[TensorSpec]:
    """The tensors that carry one column (``prefix`` is prepended to tensor names)."""
    dtype = triton_dtype(col.dtype)
    name = prefix + col.name
    if col.is_list and col.is_ragged:
        return [
            TensorSpec(name + VALUES, dtype, (-1, *_dims(col.dims[1:])), col.name, "values"),
            TensorSpec(name + OFFSETS, "INT64", (-1,), col.name, "offsets"),
        ]
    return [TensorSpec(name, dtype, (-1, *_dims(col.dims)), col.name, "dense")]


def tensor_specs(schema: Schema, prefix: str = "") -> list[TensorSpec]:
    """The tensors that carry a table of ``schema``, in column order."""
    return [spec for col in schema for spec in column_specs(col, prefix)]


def encode_table(table: Table, schema: Schema | None = None) -> dict[str, Any]:
    """Tensor name → array with the leading request dimension (arrays keep their device).

    With ``schema``, only its columns are encoded, in its order.
    """
    names = schema.column_names if schema is not None else table.column_names
    out: dict[str, Any] = {}
    for name in names:
        col = table[name]
        if isinstance(col, Ragged):
            out[name + VALUES] = col.values[None]
            offsets = col.offsets
            if offsets.dtype != np.int64:
                offsets = offsets.astype(np.int64)
            out[name + OFFSETS] = offsets[None]
        else:
            out[name] = col[None]
    return out


def decode_table(tensors: Mapping[str, Any], schema: Schema, where: str = "request") -> Table:
    """Rebuild a Table from tensors (leading dimension 1) following ``schema``.

    Raises RequestError for a missing tensor, a leading dimension other than 1, ragged
    offsets that do not match their values, or columns with different row counts.
    """
    columns: dict[str, Any] = {}
    rows: int | None = None
    for col in schema:
        if col.is_list and col.is_ragged:
            values = _strip(tensors, col.name + VALUES, where)
            offsets = _strip(tensors, col.name + OFFSETS, where)
            try:
                value: Any = Ragged(values, offsets)  # validates the offsets against the values
            except SchemaError as exc:
                raise RequestError(f"{where}: column {col.name!r} ({col.name + OFFSETS}): {exc}") from None
            n = value.num_rows
        else:
            value = _strip(tensors, col.name, where)
            if value.ndim == 0:
                raise RequestError(f"{where}: column {col.name!r} needs a row dimension")
            n = int(value.shape[0])
        if rows is None:
            rows = n
        elif n != rows:
            raise RequestError(
                f"{where}: column {col.name!r} has {n} rows but {schema.column_names[0]!r} has {rows}; "
                "every column needs one entry per request row"
            )
        columns[col.name] = value
    return Table(columns, num_rows=rows or 0)


def _strip(tensors: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in tensors:
        raise RequestError(f"{where}: tensor {name!r} is missing; sent: {sorted(tensors)}")
    arr = tensors[name]
    if arr.ndim == 0 or int(arr.shape[0]) != 1:
        raise RequestError(
            f"{where}: tensor {name!r} has shape {list(arr.shape)}; its first dimension must be 1 "
            "(one request table per request; the rows go in the second dimension)"
        )
    return arr[0]

