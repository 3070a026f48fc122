"""How a funnel Table travels as Triton tensors (shared by the exporter, runtime and client).

Two forms, recorded per model as ``FUNNEL_WIRE_FORM`` (docs/serving.md, "Wire format", says why):
**rows** (``ROWS``, executor exports of scalar-only requests): the rows are Triton's batch dimension,
a list output is padded, with ``<col>__lengths``; **request** (``REQUEST``, every other model): every
tensor has a leading dimension of 1 (one batch item is one request table) and a ragged list column
travels as ``<col>__values`` and ``<col>__offsets``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from funnel.errors import RequestError, SchemaError
from funnel.schema import ColumnSchema, Schema
from funnel.table import Ragged, Table, to_numpy

__all__ = [
    "VALUES", "OFFSETS", "LENGTHS", "ROWS", "REQUEST", "wire_form", "OUTPUT_PREFIX", "TensorSpec", "tensor_specs",
    "triton_dtype", "encode_table", "decode_table",
]

VALUES = "__values"
OFFSETS = "__offsets"
#: rows form: the lengths of a list column sent padded as ``<col>`` ``[B, L]``
LENGTHS = "__lengths"
#: the two wire forms (the ``FUNNEL_WIRE_FORM`` parameter of a model's config.pbtxt)
ROWS = "rows"
REQUEST = "request"
#: ensemble-mode outputs whose tensor name equals a request tensor's carry this prefix
#: (a Triton ensemble has one tensor namespace; an output may not reuse an input's name)
OUTPUT_PREFIX = "out__"

_TRITON_DTYPES = {
    **{n: n.upper() for n in ("bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64")},
    "float16": "FP16", "float32": "FP32", "float64": "FP64", "str": "BYTES",
}
_FUNNEL_DTYPES = {v: k for k, v in _TRITON_DTYPES.items()}


def bytes_to_text(arr: np.ndarray) -> np.ndarray:
    """A BYTES tensor (object array of ``bytes``) as an object array of ``str`` (UTF-8)."""
    if arr.dtype != object or not arr.size:
        return arr
    return np.vectorize(lambda v: v.decode("utf-8") if isinstance(v, bytes) else v, otypes=[object])(arr)


def funnel_dtype(triton: str) -> str | None:
    """The funnel dtype name (``"int64"``, ``"str"``...) of a Triton wire dtype, or None."""
    return _FUNNEL_DTYPES.get(triton)


def triton_dtype(dtype: str) -> str:
    """Triton's wire dtype (``"FP32"``, ``"BYTES"``...) for a funnel dtype name."""
    try:
        return _TRITON_DTYPES[dtype]
    except KeyError:
        raise SchemaError(f"dtype {dtype!r} has no Triton tensor type; cast the column to a numeric dtype") from None


@dataclass(slots=True, eq=False)
class TensorSpec:
    """One tensor of the wire format: name, Triton dtype, dims (``-1`` = variable)."""

    name: str
    dtype: str
    #: dims after the leading request dimension of 1 (what config.pbtxt declares)
    dims: tuple[int, ...]
    column: str
    #: "dense", "values" or "offsets" (rows form: "padded" or "lengths")
    part: str

    def __repr__(self) -> str:
        return f"TensorSpec({self.name}, {self.dtype}, {list(self.dims)})"


def wire_form(request_schema: Schema) -> str:
    """``ROWS`` when every request column holds one scalar per row, else ``REQUEST``."""
    scalars = len(request_schema) and all(not c.is_list and tuple(c.dims) == () for c in request_schema)
    return ROWS if scalars else REQUEST


def pad_value(dtype: Any) -> Any:
    """What pads a list column sent as a dense ``[B, L]`` tensor in the rows form."""
    dt = np.dtype(object if dtype == "str" else dtype)
    if dt.kind == "u":
        return np.iinfo(dt).max
    return {"O": "", "b": False, "i": -1}.get(dt.kind, 0.0)


def _dims(dims: Iterable[int | None]) -> tuple[int, ...]:
    return tuple(-1 if d is None else int(d) for d in dims)


def column_specs(col: ColumnSchema, prefix: str = "", form: str = REQUEST) -> list[TensorSpec]:
    """The tensors that carry one column (``prefix`` is prepended to tensor names); ``dims`` exclude
    Triton's batch dimension (the rows, in the rows form: a scalar column is ``[1]``)."""
    dtype = triton_dtype(col.dtype)
    name = prefix + col.name
    if col.is_list and col.is_ragged:
        inner = (-1, *_dims(col.dims[1:]))
        if form == ROWS:
            return [TensorSpec(name, dtype, inner, col.name, "padded"),
                    TensorSpec(name + LENGTHS, "INT64", (1,), col.name, "lengths")]
        return [TensorSpec(name + VALUES, dtype, inner, col.name, "values"),
                TensorSpec(name + OFFSETS, "INT64", (-1,), col.name, "offsets")]
    dims = (_dims(col.dims) or (1,)) if form == ROWS else (-1, *_dims(col.dims))
    return [TensorSpec(name, dtype, dims, col.name, "dense")]


def tensor_specs(schema: Schema, prefix: str = "", form: str = REQUEST) -> list[TensorSpec]:
    """The tensors that carry a table of ``schema``, in column order."""
    return [spec for col in schema for spec in column_specs(col, prefix, form)]


def encode_table(table: Table, schema: Schema | None = None, form: str = REQUEST) -> dict[str, Any]:
    """Tensor name → array in ``form`` (request-form arrays keep their device); with ``schema``, only
    its columns are encoded, in its order."""
    out: dict[str, Any] = {}
    for name in schema.column_names if schema is not None else table.column_names:
        col = table[name]
        if form == ROWS and isinstance(col, Ragged):
            dtype = "str" if col.values.dtype == object else col.values.dtype.name
            out[name] = col.to_dense(pad_value=pad_value(dtype))
            out[name + LENGTHS] = to_numpy(col.lengths).astype(np.int64).reshape(-1, 1)
        elif form == ROWS:
            arr = to_numpy(col)
            out[name] = arr.reshape(-1, 1) if arr.ndim == 1 else arr
        elif isinstance(col, Ragged):
            out[name + VALUES] = col.values[None]
            offsets = col.offsets
            out[name + OFFSETS] = (offsets if offsets.dtype == np.int64 else offsets.astype(np.int64))[None]
        else:
            out[name] = col[None]
    return out


def decode_table(tensors: Mapping[str, Any], schema: Schema, where: str = "request", form: str = REQUEST) -> Table:
    """Rebuild a Table from tensors following ``schema``; RequestError for a missing tensor, a wrong
    leading dimension, offsets that do not match their values, or columns with different row counts."""
    read = _read_rows if form == ROWS else _read_request
    columns: dict[str, Any] = {}
    rows: int | None = None
    for col in schema:
        value, n = read(tensors, col, where)
        if rows is not None and n != rows:
            raise RequestError(f"{where}: column {col.name!r} has {n} rows but {schema.column_names[0]!r} has "
                               f"{rows}; every column needs one entry per request row")
        rows = n
        columns[col.name] = value
    return Table(columns, num_rows=rows or 0)


def _read_request(tensors: Mapping[str, Any], col: ColumnSchema, where: str) -> tuple[Any, int]:
    """One column of the request form (leading dimension 1) and its row count."""
    if col.is_list and col.is_ragged:
        values = _tensor(tensors, col.name + VALUES, where)
        offsets = _tensor(tensors, col.name + OFFSETS, where)
        try:
            value = Ragged(values, offsets)  # validates the offsets against the values
        except SchemaError as exc:
            raise RequestError(f"{where}: column {col.name!r} ({col.name + OFFSETS}): {exc}") from None
        return value, value.num_rows
    value = _tensor(tensors, col.name, where)
    if value.ndim == 0:
        raise RequestError(f"{where}: column {col.name!r} needs a row dimension")
    return value, int(value.shape[0])


def _read_rows(tensors: Mapping[str, Any], col: ColumnSchema, where: str) -> tuple[Any, int]:
    """One scalar column of the rows form ([B, 1]; [1, B] and [B] accepted) and its row count."""
    if col.is_list or tuple(col.dims) != ():
        raise SchemaError(f"{where}: column {col.name!r} is not a scalar column; the rows wire form carries "
                          "scalars only")
    arr = _tensor(tensors, col.name, where, lead=False)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]  # [B, 1]: the rows are Triton's batch dimension
    elif arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]  # [1, B]: the request form
    elif arr.ndim != 1:
        raise RequestError(f"{where}: tensor {col.name!r} has shape {list(arr.shape)}; send one value per row "
                           "as [rows, 1] (rows in Triton's batch dimension)")
    return arr, int(arr.shape[0])


def _tensor(tensors: Mapping[str, Any], name: str, where: str, lead: bool = True) -> Any:
    """``tensors[name]``; with ``lead`` (the request form), without its leading dimension of 1."""
    if name not in tensors:
        raise RequestError(f"{where}: tensor {name!r} is missing; sent: {sorted(tensors)}")
    arr = tensors[name]
    if lead and (arr.ndim == 0 or int(arr.shape[0]) != 1):
        raise RequestError(f"{where}: tensor {name!r} has shape {list(arr.shape)}; its first dimension must be 1 "
                           "(one request table per request; the rows go in the second dimension)")
    return arr[0] if lead else arr
