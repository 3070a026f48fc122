"""The batch that flows between operators: column name → dense array or ragged list column.

Rows of a Table are always request rows (see docs/architecture.md, "Tables and batching").
numpy is the CPU representation; cupy arrays and torch tensors (CPU or CUDA) are accepted
as they are, and converted only through DLPack when asked. pandas, cupy and torch are never
imported unless such an object is passed in or asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Union

import numpy as np

from funnel.casting import cast_lossless
from funnel.errors import SchemaError
from funnel.schema import ColumnSchema, Schema, normalize_dtype

__all__ = ["Ragged", "Table", "Column", "array_module", "to_numpy", "is_gpu_array", "like"]


# -- array helpers ------------------------------------------------------------------------
def array_module(array: Any) -> str:
    """``"numpy"``, ``"cupy"`` or ``"torch"``, from the array's type (no imports)."""
    if type(array) is np.ndarray:  # the hot path: skip the module-name parsing
        return "numpy"
    mod = type(array).__module__.split(".", 1)[0]
    if mod in ("cupy", "torch"):
        return mod
    return "numpy"


def is_gpu_array(array: Any) -> bool:
    """True for cupy arrays and CUDA torch tensors."""
    mod = array_module(array)
    if mod == "cupy":
        return True
    if mod == "torch":
        return bool(array.is_cuda)
    return False


def to_numpy(array: Any) -> np.ndarray:
    """A numpy view/copy of any supported array (GPU arrays are copied to host)."""
    if type(array) is np.ndarray:
        return array
    mod = array_module(array)
    if mod == "cupy":
        return array.get()
    if mod == "torch":
        return array.detach().cpu().numpy()
    return np.asarray(array)


def like(array: Any, reference: Any) -> Any:
    """``array`` (numpy) moved to ``reference``'s array library and device (numpy/cupy/torch)."""
    mod = array_module(reference)
    if mod == array_module(array):
        return array
    if mod == "cupy":
        return sys.modules["cupy"].asarray(to_numpy(array))
    if mod == "torch":
        return sys.modules["torch"].as_tensor(to_numpy(array), device=reference.device)
    return to_numpy(array)


def _xp(array: Any) -> Any:
    mod = array_module(array)
    if mod == "cupy":
        return sys.modules["cupy"]
    return np


def _length(array: Any) -> int:
    shape = array.shape
    if len(shape) == 0:
        raise SchemaError("a column must have a row dimension; got a 0-d array (a scalar)")
    return int(shape[0])


def _concat(arrays: Sequence[Any]) -> Any:
    first = arrays[0]
    mod = array_module(first)
    if mod == "torch":
        return sys.modules["torch"].cat(list(arrays))
    if mod == "cupy":
        return sys.modules["cupy"].concatenate(list(arrays))
    return np.concatenate(arrays)


class Ragged:
    """A list column: ``values`` (all elements, flattened) and ``offsets`` (rows + 1).

    Row ``i`` is ``values[offsets[i]:offsets[i+1]]``. ``offsets`` is int32 or int64 and
    starts at 0. ``values`` may have trailing dimensions (a list of vectors).
    """

    __slots__ = ("values", "offsets")

    def __init__(self, values: Any, offsets: Any, validate: bool = True) -> None:
        if type(values) is not np.ndarray and array_module(values) == "numpy":
            values = np.asarray(values)
        if type(offsets) is not np.ndarray and array_module(offsets) == "numpy":
            offsets = np.asarray(offsets)
        if validate:
            off = to_numpy(offsets)
            if off.ndim != 1 or off.size == 0:
                raise SchemaError(f"ragged offsets must be a 1-d array of length rows+1, got shape {off.shape}")
            if off.dtype.kind not in "iu":
                raise SchemaError(f"ragged offsets must be integers (int32/int64), got {off.dtype}")
            if off[0] != 0 or (off.size > 1 and np.any(np.diff(off) < 0)):
                raise SchemaError("ragged offsets must start at 0 and never decrease")
            if int(off[-1]) != _length(values):
                raise SchemaError(
                    f"ragged offsets end at {int(off[-1])} but there are {_length(values)} values"
                )
        self.values = values
        self.offsets = offsets

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_lists(cls, lists: Iterable[Iterable[Any] | None], dtype: Any = None) -> Ragged:
        """Build from Python/numpy lists, one per row (``None`` is an empty list)."""
        rows = [np.asarray([] if r is None else list(r) if not isinstance(r, np.ndarray) else r) for r in lists]
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        np_dtype = None if dtype is None else (object if normalize_dtype(dtype) == "str" else np.dtype(normalize_dtype(dtype)))
        nonempty = [r for r in rows if len(r)]
        if nonempty:
            values = np.concatenate(nonempty)
            if np_dtype is object:
                values = values.astype(object, copy=False)
            elif np_dtype is not None:  # lossless: 1.5 never becomes the id 1
                values = cast_lossless(values, np_dtype, column="the list values", where="Ragged.from_lists")
        else:
            values = np.zeros((0,), dtype=np_dtype or np.float64)
        return cls(values, offsets, validate=False)

    @classmethod
    def from_dense(cls, array: Any, lengths: Any = None) -> Ragged:
        """A (B, k, ...) array as B lists of k elements (or of ``lengths[i]`` elements)."""
        b, k = int(array.shape[0]), int(array.shape[1])
        xp = _xp(array)
        if lengths is None:
            offsets = xp.arange(0, (b + 1) * k, k, dtype=np.int64) if b else xp.zeros(1, dtype=np.int64)
            values = array.reshape((b * k,) + tuple(array.shape[2:]))
            return cls(values, offsets, validate=False)
        lengths_np = to_numpy(lengths).astype(np.int64)
        mask = np.arange(k)[None, :] < lengths_np[:, None]
        offsets = np.zeros(b + 1, dtype=np.int64)
        np.cumsum(lengths_np, out=offsets[1:])
        values = to_numpy(array)[mask]
        return cls(values, offsets, validate=False)

    @classmethod
    def coerce(cls, column: Any, name: str = "column") -> Ragged:
        """A list column as Ragged: Ragged as is, a (B, k, ...) array as B lists of k.

        Raises SchemaError for a one-value-per-row (1-d) column, naming it.
        """
        if isinstance(column, Ragged):
            return column
        if getattr(column, "ndim", 0) < 2:
            raise SchemaError(
                f"{name} must be a list column (a Ragged or a (B, k) array), got shape {getattr(column, 'shape', None)}"
            )
        return cls.from_dense(column)

    @classmethod
    def from_lengths(cls, values: Any, lengths: Any) -> Ragged:
        """Build from values and per-row lengths."""
        lengths_np = to_numpy(lengths).astype(np.int64)
        offsets = np.zeros(lengths_np.size + 1, dtype=np.int64)
        np.cumsum(lengths_np, out=offsets[1:])
        return cls(values, offsets)

    # -- inspection ---------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        """Number of lists (rows)."""
        return int(self.offsets.shape[0]) - 1

    def __len__(self) -> int:
        return self.num_rows

    @property
    def lengths(self) -> Any:
        """Length of each row's list (same array type as ``offsets``)."""
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def dtype(self) -> Any:
        """dtype of the values."""
        return self.values.dtype

    def row(self, i: int) -> Any:
        """Row ``i``'s values."""
        off = self.offsets
        return self.values[int(off[i]) : int(off[i + 1])]

    def __iter__(self) -> Iterator[Any]:
        off = to_numpy(self.offsets)
        for i in range(off.size - 1):
            yield self.values[int(off[i]) : int(off[i + 1])]

    def to_lists(self) -> list[list[Any]]:
        """Python lists, one per row (host copy)."""
        values = to_numpy(self.values)
        off = to_numpy(self.offsets)
        return [values[off[i] : off[i + 1]].tolist() for i in range(off.size - 1)]

    def to_dense(self, pad_value: Any = 0, width: int | None = None) -> np.ndarray:
        """A (B, width) numpy array padded with ``pad_value`` (width defaults to the longest row)."""
        values = to_numpy(self.values)
        off = to_numpy(self.offsets).astype(np.int64)
        lengths = np.diff(off)
        width = int(lengths.max(initial=0)) if width is None else width
        out = np.full((lengths.size, width) + values.shape[1:], pad_value, dtype=values.dtype)
        rows = np.repeat(np.arange(lengths.size), lengths)
        cols = np.arange(values.shape[0]) - np.repeat(off[:-1], lengths)
        keep = cols < width
        out[rows[keep], cols[keep]] = values[keep]
        return out

    def same_offsets(self, other: Ragged) -> bool:
        """True when both columns have identical row partitions (candidate-aligned)."""
        if self.offsets is other.offsets:
            return True
        a, b = to_numpy(self.offsets), to_numpy(other.offsets)
        return a.shape == b.shape and bool(np.array_equal(a, b))

    def take_rows(self, rows: Any) -> Ragged:
        """The lists of the given row indices, in that order."""
        rows_np = to_numpy(rows).astype(np.int64)
        off = to_numpy(self.offsets).astype(np.int64)
        starts, ends = off[rows_np], off[rows_np + 1]
        lengths = ends - starts
        new_off = np.zeros(rows_np.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=new_off[1:])
        idx = np.repeat(starts - new_off[:-1], lengths) + np.arange(int(new_off[-1]))
        return Ragged(self.values[idx], new_off, validate=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ragged):
            return NotImplemented
        return bool(
            np.array_equal(to_numpy(self.offsets), to_numpy(other.offsets))
            and np.array_equal(to_numpy(self.values), to_numpy(other.values))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Ragged(rows={self.num_rows}, values={self.values.shape[0]}, dtype={self.values.dtype})"


Column = Union[np.ndarray, Ragged, Any]


def _check_column(name: str, col: Any) -> Any:
    if type(col) is np.ndarray or isinstance(col, Ragged):  # the common case, first
        return col
    if isinstance(col, (list, tuple)):
        if any(isinstance(x, (list, tuple, np.ndarray)) for x in col):
            # a list per row is a list column, whatever the lengths (equal-length lists do not
            # turn into a dense 2-d array: the representation never depends on the data)
            return Ragged.from_lists(col)
        col = np.asarray(col)
        if col.dtype.kind in "US":
            col = col.astype(object)
        return col
    if array_module(col) != "numpy" or isinstance(col, np.ndarray):
        _length(col)
        return col
    if hasattr(col, "__array__") or hasattr(col, "__dlpack__"):
        return np.asarray(col)
    raise SchemaError(f"column {name!r}: unsupported type {type(col).__name__}; use a numpy/cupy array, torch tensor or Ragged")


class Table(Mapping[str, Any]):
    """An ordered mapping of column name → column, all with the same number of rows."""

    __slots__ = ("_columns", "_num_rows")

    def __init__(self, columns: Mapping[str, Any] | None = None, num_rows: int | None = None) -> None:
        cols: dict[str, Any] = {}
        for name, col in (columns or {}).items():
            col = _check_column(name, col)
            n = col.num_rows if isinstance(col, Ragged) else _length(col)
            if num_rows is None:
                num_rows = n
            elif n != num_rows:
                raise SchemaError(
                    f"column {name!r} has {n} rows but the table has {num_rows}; "
                    "every column of a Table must have one entry per request row"
                )
            cols[name] = col
        self._columns = cols
        self._num_rows = 0 if num_rows is None else int(num_rows)

    @classmethod
    def _derived(cls, columns: dict[str, Any], num_rows: int) -> Table:
        """A table of columns taken from checked tables with ``num_rows`` rows (no re-check)."""
        table = cls.__new__(cls)
        table._columns = columns
        table._num_rows = num_rows
        return table

    # -- mapping ------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        try:
            return self._columns[name]
        except KeyError:
            raise SchemaError(f"column {name!r} is not in the table; available: {list(self._columns)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def get(self, name: str, default: Any = None) -> Any:
        return self._columns.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    @property
    def num_rows(self) -> int:
        """Number of rows (request rows)."""
        return self._num_rows

    @property
    def column_names(self) -> list[str]:
        """Column names in order."""
        return list(self._columns)

    def __repr__(self) -> str:
        cols = ", ".join(
            f"{k}: {v!r}" if isinstance(v, Ragged) else f"{k}: {array_module(v)}{tuple(v.shape)} {v.dtype}"
            for k, v in self._columns.items()
        )
        return f"Table(rows={self._num_rows}, {{{cols}}})"

    # -- derivation ---------------------------------------------------------------------
    def select(self, names: Iterable[str]) -> Table:
        """The named columns, in that order."""
        cols, names = self._columns, list(names)
        try:
            return Table._derived({n: cols[n] for n in names}, self._num_rows)
        except KeyError:
            return Table({n: self[n] for n in names}, num_rows=self._num_rows)  # raises SchemaError

    def drop(self, names: Iterable[str]) -> Table:
        """All columns but the named ones."""
        drop = set(names)
        return Table._derived({k: v for k, v in self._columns.items() if k not in drop}, self._num_rows)

    def with_columns(self, columns: Mapping[str, Any]) -> Table:
        """A table with ``columns`` added (or replaced)."""
        merged = dict(self._columns)
        merged.update(columns)
        if isinstance(columns, Table) and self._columns and columns._num_rows == self._num_rows:
            return Table._derived(merged, self._num_rows)  # both sides already checked
        return Table(merged, num_rows=self._num_rows if self._columns else None)

    def __add__(self, other: Table) -> Table:
        return self.with_columns(other)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table):
            return NotImplemented
        if self.column_names != other.column_names or self.num_rows != other.num_rows:
            return False
        for k, v in self._columns.items():
            w = other[k]
            if isinstance(v, Ragged) or isinstance(w, Ragged):
                if not (isinstance(v, Ragged) and isinstance(w, Ragged) and v == w):
                    return False
            elif not np.array_equal(to_numpy(v), to_numpy(w)):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    @property
    def device(self) -> str:
        """``"cuda"`` when any column is on a GPU, otherwise ``"cpu"``."""
        for col in self._columns.values():
            arr = col.values if isinstance(col, Ragged) else col
            if is_gpu_array(arr):
                return "cuda"
        return "cpu"

    def to_numpy(self) -> Table:
        """The same table with every column on the host as numpy."""
        out: dict[str, Any] = {}
        for k, v in self._columns.items():
            if isinstance(v, Ragged):
                out[k] = Ragged(to_numpy(v.values), to_numpy(v.offsets), validate=False)
            else:
                out[k] = to_numpy(v)
        return Table(out, num_rows=self._num_rows)

    def to_cupy(self) -> Table:
        """The same table on the GPU as cupy arrays (zero-copy from torch CUDA via DLPack)."""
        import cupy  # noqa: PLC0415 - optional dependency, imported on request only

        def conv(a: Any) -> Any:
            mod = array_module(a)
            if mod == "cupy":
                return a
            if mod == "torch" and a.is_cuda:
                return cupy.from_dlpack(a)
            if a.dtype == object:
                raise SchemaError("string columns cannot live on the GPU; keep them on the host")
            return cupy.asarray(to_numpy(a))

        out = {
            k: Ragged(conv(v.values), conv(v.offsets), validate=False) if isinstance(v, Ragged) else conv(v)
            for k, v in self._columns.items()
        }
        return Table(out, num_rows=self._num_rows)

    # -- batching -----------------------------------------------------------------------
    @staticmethod
    def concat(tables: Sequence[Table]) -> Table:
        """Stack tables with the same columns row-wise (a dynamic batch → one table)."""
        if not tables:
            return Table()
        if len(tables) == 1:
            return tables[0]
        names = tables[0].column_names
        for i, t in enumerate(tables[1:], 1):
            if t.column_names != names:
                raise SchemaError(f"cannot concat tables: table {i} has columns {t.column_names}, table 0 has {names}")
        out: dict[str, Any] = {}
        for name in names:
            cols = [t[name] for t in tables]
            if isinstance(cols[0], Ragged):
                if not all(isinstance(c, Ragged) for c in cols):
                    raise SchemaError(f"cannot concat column {name!r}: ragged in some tables, dense in others")
                shifted = [to_numpy(cols[0].offsets).astype(np.int64)]
                base = int(shifted[0][-1])
                for c in cols[1:]:
                    off = to_numpy(c.offsets).astype(np.int64)
                    shifted.append(off[1:] + base)
                    base += int(off[-1])
                offsets = np.concatenate(shifted)
                values = _concat([c.values for c in cols])
                if array_module(values) == "cupy":
                    offsets = sys.modules["cupy"].asarray(offsets)
                out[name] = Ragged(values, offsets, validate=False)
            else:
                out[name] = _concat(cols)
        return Table(out, num_rows=sum(t.num_rows for t in tables))

    def split(self, row_counts: Sequence[int]) -> list[Table]:
        """Inverse of :meth:`concat`: consecutive slices of ``row_counts`` rows each."""
        if sum(row_counts) != self._num_rows:
            raise SchemaError(f"cannot split {self._num_rows} rows into parts of {list(row_counts)}")
        parts: list[Table] = []
        start = 0
        for count in row_counts:
            parts.append(self.slice(start, start + count))
            start += count
        return parts

    def slice(self, start: int, stop: int) -> Table:
        """Rows ``start:stop`` (ragged offsets are rebased to 0)."""
        out: dict[str, Any] = {}
        for name, col in self._columns.items():
            if isinstance(col, Ragged):
                off = col.offsets[start : stop + 1]
                lo, hi = int(off[0]), int(off[-1])
                out[name] = Ragged(col.values[lo:hi], off - off[0], validate=False)
            else:
                out[name] = col[start:stop]
        return Table(out, num_rows=stop - start)

    # -- conversion ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Table:
        """From a mapping of name → array / list / list of lists (ragged) / Ragged."""
        return cls(data)

    @classmethod
    def from_pandas(cls, df: Any, schema: Schema | None = None) -> Table:
        """From a pandas DataFrame; list-valued columns become :class:`Ragged`."""
        out: dict[str, Any] = {}
        for name in df.columns:
            series = df[name]
            col_schema = schema.get(name) if schema is not None else None
            if series.dtype == object and len(series) and isinstance(
                series.iloc[0], (list, tuple, np.ndarray)
            ) or (col_schema is not None and col_schema.is_list and col_schema.is_ragged):
                dtype = col_schema.dtype if col_schema is not None else None
                out[str(name)] = Ragged.from_lists(series.tolist(), dtype=dtype)
            elif series.dtype == object or str(series.dtype) in ("string", "str"):
                out[str(name)] = series.to_numpy(dtype=object)
            else:
                arr = series.to_numpy()
                if col_schema is not None and not col_schema.is_list:  # lossless, range-checked
                    arr = cast_lossless(arr, col_schema.numpy_dtype, column=str(name), where="Table.from_pandas")
                out[str(name)] = arr
        return cls(out, num_rows=len(df))

    def to_pandas(self) -> Any:
        """A pandas DataFrame (list columns as Python lists; 2-d columns as lists too)."""
        import pandas as pd  # noqa: PLC0415 - optional dependency

        data: dict[str, Any] = {}
        for name, col in self._columns.items():
            if isinstance(col, Ragged):
                data[name] = pd.Series(col.to_lists(), dtype=object)
            else:
                arr = to_numpy(col)
                data[name] = list(arr) if arr.ndim > 1 else arr
        return pd.DataFrame(data, index=pd.RangeIndex(self._num_rows))

    @classmethod
    def from_any(cls, data: Any, schema: Schema | None = None) -> Table:
        """Accept a Table, a mapping, or a pandas DataFrame."""
        if isinstance(data, Table):
            return data
        if isinstance(data, Mapping):
            return cls(data)
        if type(data).__module__.startswith("pandas"):
            return cls.from_pandas(data, schema=schema)
        raise SchemaError(
            f"expected a funnel Table, a dict of columns or a pandas DataFrame, got {type(data).__name__}"
        )


def column_schema_of(name: str, col: Any) -> ColumnSchema:
    """Infer a ColumnSchema from a column's data."""
    if isinstance(col, Ragged):
        vals = col.values
        dtype = "str" if getattr(vals, "dtype", None) == object else normalize_dtype(vals.dtype)
        return ColumnSchema(name, dtype, dims=(None, *tuple(vals.shape[1:])), is_list=True, is_ragged=True)
    dtype = "str" if getattr(col, "dtype", None) == object else normalize_dtype(col.dtype)
    return ColumnSchema(name, dtype, dims=tuple(col.shape[1:]), is_list=False)


def schema_of(table: Table) -> Schema:
    """Infer a Schema from a Table's columns."""
    return Schema([column_schema_of(k, v) for k, v in table.items()])
