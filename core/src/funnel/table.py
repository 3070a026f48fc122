"""The batch that flows between operators: column name → dense array or ragged list column.

Rows are request rows (docs/architecture.md, "Tables and batching"; docs/reference/table.md). cupy
arrays and torch tensors are kept as they are; pandas, cupy and torch are imported only when passed or asked for.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Union

import numpy as np

from funnel.casting import cast_lossless
from funnel.errors import SchemaError
from funnel.schema import ColumnSchema, Schema

__all__ = ["Ragged", "Table", "Column", "array_module", "to_numpy", "is_gpu_array", "like"]


def array_module(array: Any) -> str:
    """``"numpy"``, ``"cupy"`` or ``"torch"``, from the array's type (no imports)."""
    if type(array) is np.ndarray:  # the hot path: skip the module-name parsing
        return "numpy"
    mod = type(array).__module__.split(".", 1)[0]
    return mod if mod in ("cupy", "torch") else "numpy"


def is_gpu_array(array: Any) -> bool:
    """True for cupy arrays and CUDA torch tensors."""
    mod = array_module(array)
    return mod == "cupy" or (mod == "torch" and bool(array.is_cuda))


def to_numpy(array: Any) -> np.ndarray:
    """A numpy view/copy of any supported array (GPU arrays are copied to host)."""
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
    if mod == "torch":
        return sys.modules["torch"].as_tensor(to_numpy(array), device=reference.device)
    return _xp(reference).asarray(to_numpy(array))


def _xp(array: Any) -> Any:
    """cupy for a cupy array, else numpy (torch columns get numpy offsets)."""
    return sys.modules["cupy"] if array_module(array) == "cupy" else np


def _length(array: Any) -> int:
    if len(array.shape) == 0:
        raise SchemaError("a column must have a row dimension; got a 0-d array (a scalar)")
    return int(array.shape[0])


def _concat(arrays: Sequence[Any]) -> Any:
    if array_module(arrays[0]) == "torch":
        return sys.modules["torch"].cat(list(arrays))
    return _xp(arrays[0]).concatenate(list(arrays))


def _offsets_from_lengths(lengths: Any) -> np.ndarray:
    """int64 offsets (rows + 1, starting at 0) of lists with the given lengths."""
    return np.concatenate(([0], np.cumsum(to_numpy(lengths).astype(np.int64))))


def _map_arrays(column: Any, convert: Any) -> Any:
    """``convert`` applied to a dense column, or to a Ragged column's values and offsets."""
    if isinstance(column, Ragged):
        return Ragged(convert(column.values), convert(column.offsets), validate=False)
    return convert(column)


class Ragged:
    """A list column: row ``i`` is ``values[offsets[i]:offsets[i+1]]`` (see docs/reference/table.md)."""

    __slots__ = ("values", "offsets")

    def __init__(self, values: Any, offsets: Any, validate: bool = True) -> None:
        # numpy, cupy and torch arrays are kept as they are (ndarray checked first: the hot path)
        nd = np.ndarray
        self.values = values if type(values) is nd or array_module(values) != "numpy" else np.asarray(values)
        self.offsets = offsets if type(offsets) is nd or array_module(offsets) != "numpy" else np.asarray(offsets)
        if not validate:
            return
        off = to_numpy(self.offsets)
        if off.ndim != 1 or off.size == 0:
            raise SchemaError(f"ragged offsets must be a 1-d array of length rows+1, got shape {off.shape}")
        if off.dtype.kind not in "iu":
            raise SchemaError(f"ragged offsets must be integers (int32/int64), got {off.dtype}")
        if off[0] != 0 or (off.size > 1 and np.any(np.diff(off) < 0)):
            raise SchemaError("ragged offsets must start at 0 and never decrease")
        if int(off[-1]) != _length(self.values):
            raise SchemaError(f"ragged offsets end at {int(off[-1])} but there are {_length(self.values)} values")

    @classmethod
    def from_lists(cls, lists: Iterable[Iterable[Any] | None], dtype: Any = None) -> Ragged:
        """Build from Python/numpy lists, one per row (``None`` is an empty list)."""
        rows = [r if isinstance(r, np.ndarray) else np.asarray([] if r is None else list(r)) for r in lists]
        want = None if dtype is None else ColumnSchema("values", dtype).numpy_dtype
        nonempty = [r for r in rows if len(r)]
        values = np.concatenate(nonempty) if nonempty else np.zeros((0,), dtype=np.float64 if want is None else want)
        if want == object:
            values = values.astype(object, copy=False)
        elif want is not None:  # lossless: 1.5 never becomes the id 1
            values = cast_lossless(values, want, column="the list values", where="Ragged.from_lists")
        return cls(values, _offsets_from_lengths([len(r) for r in rows]), validate=False)

    @classmethod
    def from_dense(cls, array: Any, lengths: Any = None) -> Ragged:
        """A (B, k, ...) array as B lists of k elements (or of ``lengths[i]`` elements)."""
        b, k = int(array.shape[0]), int(array.shape[1])
        if lengths is None:
            offsets = _xp(array).arange(b + 1, dtype=np.int64) * k
            return cls(array.reshape((b * k,) + tuple(array.shape[2:])), offsets, validate=False)
        lengths = to_numpy(lengths).astype(np.int64)
        mask = np.arange(k)[None, :] < lengths[:, None]
        return cls(to_numpy(array)[mask], _offsets_from_lengths(lengths), validate=False)

    @classmethod
    def coerce(cls, column: Any, name: str = "column") -> Ragged:
        """A list column as Ragged: Ragged as is, a (B, k, ...) array as B lists of k; SchemaError for a 1-d one."""
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
        return cls(values, _offsets_from_lengths(lengths))

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
        return self.values[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def __iter__(self) -> Iterator[Any]:
        off = to_numpy(self.offsets).tolist()
        return (self.values[a:b] for a, b in zip(off[:-1], off[1:]))

    def to_lists(self) -> list[list[Any]]:
        """Python lists, one per row (host copy)."""
        return [row.tolist() for row in _map_arrays(self, to_numpy)]

    def to_dense(self, pad_value: Any = 0, width: int | None = None) -> np.ndarray:
        """A (B, width) numpy array padded with ``pad_value`` (width defaults to the longest row)."""
        values, off = to_numpy(self.values), to_numpy(self.offsets).astype(np.int64)
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
        return self.offsets is other.offsets or bool(np.array_equal(to_numpy(self.offsets), to_numpy(other.offsets)))

    def take_rows(self, rows: Any) -> Ragged:
        """The lists of the given row indices, in that order."""
        rows = to_numpy(rows).astype(np.int64)
        off = to_numpy(self.offsets).astype(np.int64)
        starts, lengths = off[rows], off[rows + 1] - off[rows]
        new_off = _offsets_from_lengths(lengths)
        idx = np.repeat(starts - new_off[:-1], lengths) + np.arange(int(new_off[-1]))
        return Ragged(self.values[idx], new_off, validate=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ragged):
            return NotImplemented
        return self.same_offsets(other) and bool(np.array_equal(to_numpy(self.values), to_numpy(other.values)))

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
        return col.astype(object) if col.dtype.kind in "US" else col
    if array_module(col) != "numpy" or isinstance(col, np.ndarray):
        _length(col)
        return col
    if hasattr(col, "__array__") or hasattr(col, "__dlpack__"):
        return np.asarray(col)
    raise SchemaError(
        f"column {name!r}: unsupported type {type(col).__name__}; use a numpy/cupy array, torch tensor or Ragged"
    )


class Table(Mapping[str, Any]):
    """An ordered mapping of column name → column, all with the same number of rows."""

    __slots__ = ("_columns", "_num_rows")

    def __init__(self, columns: Mapping[str, Any] | None = None, num_rows: int | None = None) -> None:
        self._columns: dict[str, Any] = {}
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
            self._columns[name] = col
        self._num_rows = 0 if num_rows is None else int(num_rows)

    @classmethod
    def _derived(cls, columns: dict[str, Any], num_rows: int) -> Table:
        """A table of columns taken from checked tables with ``num_rows`` rows (no re-check)."""
        table = cls.__new__(cls)
        table._columns, table._num_rows = columns, num_rows
        return table

    def __getitem__(self, name: str) -> Any:
        if name in self._columns:
            return self._columns[name]
        raise SchemaError(f"column {name!r} is not in the table; available: {list(self._columns)}")

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

    def select(self, names: Iterable[str]) -> Table:
        """The named columns, in that order."""
        return Table._derived({n: self[n] for n in names}, self._num_rows)

    def drop(self, names: Iterable[str]) -> Table:
        """All columns but the named ones."""
        drop = set(names)
        return Table._derived({k: v for k, v in self._columns.items() if k not in drop}, self._num_rows)

    def with_columns(self, columns: Mapping[str, Any]) -> Table:
        """A table with ``columns`` added (or replaced)."""
        merged = {**self._columns, **(columns._columns if isinstance(columns, Table) else columns)}
        if isinstance(columns, Table) and self._columns and columns._num_rows == self._num_rows:
            return Table._derived(merged, self._num_rows)  # both sides already checked
        return Table(merged, num_rows=self._num_rows if self._columns else None)

    __add__ = with_columns

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table):
            return NotImplemented
        return self.column_names == other.column_names and self.num_rows == other.num_rows and all(
            isinstance(v, Ragged) == isinstance(w, Ragged)
            and (v == w if isinstance(v, Ragged) else np.array_equal(to_numpy(v), to_numpy(w)))
            for v, w in zip(self._columns.values(), other._columns.values())
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def device(self) -> str:
        """``"cuda"`` when any column is on a GPU, otherwise ``"cpu"``."""
        gpu = any(is_gpu_array(c.values if isinstance(c, Ragged) else c) for c in self._columns.values())
        return "cuda" if gpu else "cpu"

    def to_numpy(self) -> Table:
        """The same table with every column on the host as numpy."""
        return Table({k: _map_arrays(v, to_numpy) for k, v in self._columns.items()}, num_rows=self._num_rows)

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

        return Table({k: _map_arrays(v, conv) for k, v in self._columns.items()}, num_rows=self._num_rows)

    @staticmethod
    def concat(tables: Sequence[Table]) -> Table:
        """Stack tables with the same columns row-wise (a dynamic batch → one table)."""
        if len(tables) <= 1:
            return tables[0] if tables else Table()
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
                values = _concat([c.values for c in cols])
                offsets = _offsets_from_lengths(np.concatenate([to_numpy(c.lengths) for c in cols]))
                out[name] = Ragged(values, _xp(values).asarray(offsets), validate=False)
            else:
                out[name] = _concat(cols)
        return Table(out, num_rows=sum(t.num_rows for t in tables))

    def split(self, row_counts: Sequence[int]) -> list[Table]:
        """Inverse of :meth:`concat`: consecutive slices of ``row_counts`` rows each."""
        if sum(row_counts) != self._num_rows:
            raise SchemaError(f"cannot split {self._num_rows} rows into parts of {list(row_counts)}")
        bounds = [0, *itertools.accumulate(row_counts)]
        return [self.slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]

    def slice(self, start: int, stop: int) -> Table:
        """Rows ``start:stop`` (ragged offsets are rebased to 0)."""
        out: dict[str, Any] = {}
        for name, col in self._columns.items():
            if isinstance(col, Ragged):
                off = col.offsets[start : stop + 1]
                out[name] = Ragged(col.values[int(off[0]) : int(off[-1])], off - off[0], validate=False)
            else:
                out[name] = col[start:stop]
        return Table(out, num_rows=stop - start)

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
            lists = series.dtype == object and len(series) and isinstance(series.iloc[0], (list, tuple, np.ndarray))
            if lists or (col_schema is not None and col_schema.is_ragged):  # is_ragged implies is_list
                out[str(name)] = Ragged.from_lists(series.tolist(), dtype=col_schema.dtype if col_schema else None)
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
        return ColumnSchema(name, col.values.dtype, dims=(None, *col.values.shape[1:]), is_list=True, is_ragged=True)
    return ColumnSchema(name, col.dtype, dims=tuple(col.shape[1:]), is_list=False)


def schema_of(table: Table) -> Schema:
    """Infer a Schema from a Table's columns."""
    return Schema([column_schema_of(k, v) for k, v in table.items()])
