"""Stateless and simple fitted operators: LambdaOp, Rename, LogOp, Normalize, Clip, ..."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from funnel.errors import OperatorError, SchemaError
from funnel.schema import ColumnSchema, Schema, Tags
from funnel.selector import ColumnSelector
from funnel.table import Ragged, Table

from funnel_workflow.base import Operator, StatOperator, frame_to_table, is_null, table_to_frame
from funnel_workflow.code import function_from_config, function_to_config
from funnel_workflow.ops._util import as_list, hash64, map_values, per_column, rewrap, values_of

__all__ = [
    "LambdaOp", "Rename", "LogOp", "Normalize", "NormalizeMinMax", "FillMissing", "Clip", "Bucketize",
    "HashBucket", "AddTags", "AddProperties", "AddMetadata", "ValueCount", "ListSlice", "Filter",
    "DifferenceLag", "JoinExternal",
]


def _fn(f: Any) -> Callable[..., Any]:
    if isinstance(f, Mapping):  # rebuilt from config: code, needs the opt-in
        return function_from_config(dict(f))
    if not callable(f):
        raise SchemaError(f"expected a function, got {type(f).__name__}")
    return f


def _arity(f: Callable[..., Any]) -> int:
    try:
        return len([p for p in inspect.signature(f).parameters.values()
                    if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty])
    except (TypeError, ValueError):
        return 1


class LambdaOp(Operator):
    """Apply ``f(col)`` (a pandas Series) — or ``f(col, df)`` — to each selected column.

    ``node >> function`` builds one. Output dtypes come from the data (recorded at fit).
    """

    type_name = "workflow.LambdaOp"
    dynamic_dtypes = True

    def __init__(self, f: Any, dependency: Any = None, label: str | None = None, dtype: Any = None,
                 tags: list[Any] | None = None, properties: dict[str, Any] | None = None,
                 offline_only: bool = False) -> None:
        self.f = _fn(f)
        self._f_config = dict(f) if isinstance(f, Mapping) else None
        self._arity = _arity(self.f)
        self.dependency = dependency
        self._label = label
        self.dtype = None if dtype is None else str(np.dtype(dtype))
        self.tags = [str(getattr(t, "value", t)) for t in tags or []]
        self.properties = dict(properties or {})
        if offline_only:
            self.offline_only = True

    def _nvt_dependencies(self) -> Any:
        return self.dependency

    @property
    def label(self) -> str:
        name = self._label or getattr(self.f, "__name__", "lambda")
        return f"LambdaOp({name})"

    def output_tags(self) -> list[str]:
        return self.tags

    def output_properties(self) -> dict[str, Any]:
        return self.properties

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        cols = super().output_columns(input_schema, selected, names)
        if self.dtype is not None:
            cols = [c.with_dtype(self.dtype) for c in cols]
        return cols

    def transform(self, *args: Any) -> Any:  # type: ignore[override]
        if len(args) == 2:
            return self.transform_df(*args)
        (table,) = args
        import pandas as pd  # noqa: PLC0415

        cols = self.input_columns or [c for c in table.column_names if c not in self._dependency_columns()]
        frame = table_to_frame(table) if self._arity >= 2 else None
        out: dict[str, Any] = {}
        for name in cols:
            col = table[name]
            if isinstance(col, Ragged):
                series = table_to_frame(Table({name: col}))[name]
            else:
                series = pd.Series(col, name=name, copy=False)
            result = self.f(series, frame) if self._arity >= 2 else self.f(series)
            out[name] = _column_of(result, name, table.num_rows, self.label)
        if self.dtype is not None:
            out = {k: rewrap(v, values_of(v).astype(self.dtype)) for k, v in out.items()}
        return Table(out, num_rows=table.num_rows)

    def transform_df(self, col_selector: ColumnSelector, df: Any) -> Any:
        for name in col_selector.names:
            df[name] = self.f(df[name], df) if self._arity >= 2 else self.f(df[name])
        return df

    def to_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"f": self._f_config or function_to_config(self.f, f"LambdaOp {self.label}")}
        if self._label:
            cfg["label"] = self._label
        if self.dtype:
            cfg["dtype"] = self.dtype
        if self.tags:
            cfg["tags"] = self.tags
        if self.properties:
            cfg["properties"] = self.properties
        if isinstance(self.dependency, (str, list, tuple)):
            cfg["dependency"] = self.dependency
        return {**cfg, **self.base_config()}


def _column_of(result: Any, name: str, rows: int, where: str) -> Any:
    """A LambdaOp result (Series, array, list column) as a Table column of ``rows`` rows."""
    import pandas as pd  # noqa: PLC0415

    if isinstance(result, pd.Series):
        if result.dtype == object or isinstance(result.dtype, pd.DatetimeTZDtype) or str(result.dtype) in (
                "category", "string", "str"):
            return frame_to_table(result.reset_index(drop=True).to_frame(name), [name], where)[name]
        arr = result.to_numpy()
    else:
        arr = np.asarray(result)
        if arr.dtype == object:
            return frame_to_table(pd.DataFrame({name: pd.Series(list(arr), dtype=object)}), [name], where)[name]
    if arr.ndim == 0:
        raise OperatorError(f"{where}: the function returned a scalar for column {name!r}; return one value per row")
    if arr.shape[0] != rows:
        raise OperatorError(f"{where}: the function returned {arr.shape[0]} values for column {name!r} with {rows} "
                            "rows; return one value per row")
    return arr


class Rename(Operator):
    """Rename columns: ``f(name) -> new name``, ``postfix`` appended, or one ``name``."""

    type_name = "workflow.Rename"
    has_array_path = True

    def __init__(self, f: Any = None, postfix: str | None = None, replace: bool = True, name: str | None = None,
                 offline_only: bool = False) -> None:
        if f is None and postfix is None and name is None:
            raise SchemaError("Rename: give one of f=, postfix= or name=")
        self.f = None if f is None else _fn(f)
        self._f_config = dict(f) if isinstance(f, Mapping) else None
        self.postfix = postfix
        self.replace = replace
        self.name = name
        if offline_only:
            self.offline_only = True

    def new_name(self, col: str) -> str:
        if self.f is not None:
            return str(self.f(col))
        if self.postfix is not None:
            return col + self.postfix
        return str(self.name)

    def output_column_names(self, col_selector: ColumnSelector) -> ColumnSelector:
        if self.name is not None and self.f is None and self.postfix is None and len(col_selector.names) > 1:
            raise SchemaError(
                f"Rename(name={self.name!r}) applies to one column, got {list(col_selector.names)}; "
                "use postfix= or f= for several"
            )
        return ColumnSelector([self.new_name(c) for c in col_selector.names])

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        return [input_schema[old].with_name(new) for old, new in zip(selected, names)]

    def transform_arrays(self, table: Table) -> Table:
        return Table({self.new_name(c): table[c] for c in self.input_columns}, num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {}
        if self.f is not None:
            cfg["f"] = self._f_config or function_to_config(self.f, "Rename")
        if self.postfix is not None:
            cfg["postfix"] = self.postfix
        if self.name is not None:
            cfg["name"] = self.name
        return {**cfg, **self.base_config()}


class _Elementwise(Operator):
    """An element-wise numeric op over scalar or list columns with a fixed output dtype."""

    has_array_path = True
    out_dtype: str | None = "float32"
    add_tags: tuple[str, ...] = (Tags.CONTINUOUS.value,)

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        self.require(input_schema, selected, dtype_kinds=self.input_kinds)
        cols = []
        for name in names:
            src = input_schema[name]
            col = src.with_dtype(self.out_dtype or src.dtype)
            tags = [t for t in col.tags if t not in self.drop_tags] + list(self.add_tags)
            cols.append(self._decorate(col.with_tags(tags).with_properties(self.properties_for(name, src))))
        return cols

    input_kinds = "iufb"
    drop_tags: tuple[str, ...] = (Tags.CATEGORICAL.value,)

    def properties_for(self, name: str, src: ColumnSchema) -> dict[str, Any]:
        return {k: v for k, v in src.properties.items() if k not in ("domain", "cardinality", "num_items")}

    def apply(self, name: str, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def transform_arrays(self, table: Table) -> Table:
        return Table({n: map_values(table[n], lambda v, n=n: self.apply(n, v)) for n in self.input_columns},
                     num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        return self.base_config()


class LogOp(_Elementwise):
    """``log(x + 1)`` as float32 (NVTabular's LogOp)."""

    type_name = "workflow.LogOp"

    def __init__(self, offline_only: bool = False) -> None:
        if offline_only:
            self.offline_only = True

    def apply(self, name: str, values: np.ndarray) -> np.ndarray:
        return np.log1p(values.astype(np.float32))


class Clip(_Elementwise):
    """Clip values to ``[min_value, max_value]`` (either may be None); keeps the dtype."""

    type_name = "workflow.Clip"
    out_dtype = None
    add_tags = ()
    drop_tags = ()

    def __init__(self, min_value: float | None = None, max_value: float | None = None, offline_only: bool = False) -> None:
        if min_value is None and max_value is None:
            raise SchemaError("Clip: give min_value, max_value or both")
        self.min_value, self.max_value = min_value, max_value
        if offline_only:
            self.offline_only = True

    def apply(self, name: str, values: np.ndarray) -> np.ndarray:
        out = np.clip(values, self.min_value, self.max_value)
        return out.astype(values.dtype, copy=False)

    def to_config(self) -> dict[str, Any]:
        return {"min_value": self.min_value, "max_value": self.max_value, **self.base_config()}


class HashBucket(_Elementwise):
    """``hash(value) % num_buckets`` as int64 (categorical); num_buckets int or per-column dict."""

    type_name = "workflow.HashBucket"
    out_dtype = "int64"
    add_tags = (Tags.CATEGORICAL.value,)
    drop_tags = (Tags.CONTINUOUS.value,)
    input_kinds = "iufbO"

    def __init__(self, num_buckets: int | dict[str, int], offline_only: bool = False) -> None:
        self.num_buckets = num_buckets
        if offline_only:
            self.offline_only = True

    def _buckets(self, name: str) -> int:
        """The column's bucket count: a positive integer (0 hashed everything to 0, 2.5 used 2 buckets,
        a negative count or a column missing from the dict failed with a bare numpy/int() error)."""
        nb = per_column(self.num_buckets, name)
        if nb is None:
            given = sorted(self.num_buckets) if isinstance(self.num_buckets, dict) else self.num_buckets
            raise SchemaError(f"HashBucket: no num_buckets for column {name!r} (num_buckets={given!r}); "
                              "give one count, or a dict with every selected column")
        if isinstance(nb, bool) or not isinstance(nb, (int, np.integer)) or nb < 1:
            raise SchemaError(f"HashBucket: num_buckets for column {name!r} must be a positive integer, got {nb!r}")
        return int(nb)

    def properties_for(self, name: str, src: ColumnSchema) -> dict[str, Any]:
        nb = self._buckets(name)
        return {"cardinality": nb, "num_items": nb, "domain": {"min": 0, "max": nb - 1, "name": name}}

    def apply(self, name: str, values: np.ndarray) -> np.ndarray:
        return (hash64(values) % np.uint64(self._buckets(name))).astype(np.int64)

    def to_config(self) -> dict[str, Any]:
        return {"num_buckets": self.num_buckets, **self.base_config()}


class Bucketize(_Elementwise):
    """Bin values by ``boundaries`` (a list, or per-column dict): ids 0..len(boundaries)."""

    type_name = "workflow.Bucketize"
    out_dtype = "int64"
    add_tags = (Tags.CATEGORICAL.value,)
    drop_tags = (Tags.CONTINUOUS.value,)

    def __init__(self, boundaries: list[float] | dict[str, list[float]], offline_only: bool = False) -> None:
        self.boundaries = boundaries
        if offline_only:
            self.offline_only = True

    def _bounds(self, name: str) -> np.ndarray:
        b = self.boundaries.get(name) if isinstance(self.boundaries, dict) else self.boundaries
        if b is None:
            raise SchemaError(f"Bucketize: no boundaries for column {name!r}")
        return np.asarray(b, dtype=np.float64)

    def properties_for(self, name: str, src: ColumnSchema) -> dict[str, Any]:
        n = len(self._bounds(name)) + 1
        return {"cardinality": n, "domain": {"min": 0, "max": n - 1, "name": name}}

    def apply(self, name: str, values: np.ndarray) -> np.ndarray:
        return np.digitize(values, self._bounds(name), right=False).astype(np.int64)

    def to_config(self) -> dict[str, Any]:
        return {"boundaries": self.boundaries, **self.base_config()}


class FillMissing(_Elementwise):
    """Replace nulls (NaN/NaT/None) with ``fill_val``; ``add_binary_cols`` adds ``<col>_filled``."""

    type_name = "workflow.FillMissing"
    out_dtype = None
    add_tags = ()
    drop_tags = ()
    input_kinds = "iufbOmM"

    def __init__(self, fill_val: Any = 0, add_binary_cols: bool = False, offline_only: bool = False) -> None:
        self.fill_val = fill_val
        self.add_binary_cols = bool(add_binary_cols)
        if offline_only:
            self.offline_only = True

    def output_column_names(self, col_selector: ColumnSelector) -> ColumnSelector:
        names = list(col_selector.names)
        if self.add_binary_cols:
            names += [f"{c}_filled" for c in col_selector.names]
        return ColumnSelector(names)

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        self.require(input_schema, selected, dtype_kinds=self.input_kinds)
        cols = [self._decorate(input_schema[n]) for n in selected]
        if self.add_binary_cols:
            cols += [ColumnSchema(f"{n}_filled", "bool", dims=input_schema[n].dims) for n in selected]
        return cols

    def transform_arrays(self, table: Table) -> Table:
        out: dict[str, Any] = {}
        for n in self.input_columns:
            col = table[n]
            vals = values_of(col)
            null = is_null(vals)
            filled = vals
            if null.any():
                filled = vals.copy()
                filled[null] = self.fill_val
            out[n] = rewrap(col, filled)
            if self.add_binary_cols:
                out[f"{n}_filled"] = rewrap(col, null)
        return Table({k: out[k] for k in [*self.input_columns, *[f"{n}_filled" for n in self.input_columns
                                                                 if self.add_binary_cols]]},
                     num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        return {"fill_val": self.fill_val, "add_binary_cols": self.add_binary_cols, **self.base_config()}


class _Moments(StatOperator):
    """Per-column count, sum, sum of squares, min and max (combined across partitions)."""

    has_array_path = True

    def __init__(self, offline_only: bool = False) -> None:
        if offline_only:
            self.offline_only = True

    def fit_partition(self, table: Table) -> dict[str, Any]:
        out = {}
        for n in self.input_columns:
            v = values_of(table[n]).astype(np.float64)
            v = v[~np.isnan(v)]
            out[n] = (int(v.size), float(v.sum()), float((v * v).sum()),
                      float(v.min()) if v.size else np.inf, float(v.max()) if v.size else -np.inf)
        return out

    def combine(self, partials: list[Any]) -> None:
        self.moments: dict[str, dict[str, float]] = {}
        for n in self.input_columns:
            parts = [p[n] for p in partials if n in p]
            count = sum(p[0] for p in parts)
            total = sum(p[1] for p in parts)
            sq = sum(p[2] for p in parts)
            if count == 0:  # else Normalize passed values through unscaled and NormalizeMinMax gave NaN
                raise OperatorError(
                    f"{self.label}: column {n!r} has no non-null value in the data the workflow was fitted on, "
                    "so it has no statistics to scale by; fill it first (FillMissing) or leave it out of this op"
                )
            mean = total / count
            var = (sq - count * mean * mean) / (count - 1) if count > 1 else 0.0
            self.moments[n] = {"count": count, "mean": mean, "std": float(np.sqrt(max(var, 0.0))),
                               "min": min(p[3] for p in parts),
                               "max": max(p[4] for p in parts)}
        self.__dict__["_fitted"] = True

    def stats(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"moments": self.moments}, {}

    def set_stats(self, data: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
        self.moments = {k: dict(v) for k, v in data["moments"].items()}
        self.__dict__["_fitted"] = True

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        self.require(input_schema, selected, dtype_kinds="iufb")
        cols = []
        for n in names:
            src = input_schema[n]
            tags = [t for t in src.tags if t != Tags.CATEGORICAL.value] + [Tags.CONTINUOUS]
            props = {k: v for k, v in src.properties.items() if k not in ("domain", "cardinality", "num_items")}
            cols.append(self._decorate(src.with_dtype("float32").with_tags(tags).with_properties(props)))
        return cols

    def _shift_scale(self, m: Mapping[str, float]) -> tuple[float, float]:
        """The column's ``(shift, scale)``: the op computes ``(x - shift) / scale``."""
        raise NotImplementedError

    def transform_arrays(self, table: Table) -> Table:
        self.require_fitted()
        out = {}
        for n in self.input_columns:
            shift, scale = self._shift_scale(self.moments[n])
            out[n] = map_values(table[n], lambda v, shift=shift, scale=scale: ((v.astype(np.float64) - shift) / scale)
                                .astype(np.float32))
        return Table(out, num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        return self.base_config()


class Normalize(_Moments):
    """Standardize: ``(x - mean) / std`` (std with ddof=1, as dask/pandas), float32."""

    type_name = "workflow.Normalize"

    def _shift_scale(self, m: Mapping[str, float]) -> tuple[float, float]:
        return m["mean"], m["std"] if m["std"] > 0 else 1.0


class NormalizeMinMax(_Moments):
    """Scale to [0, 1]: ``(x - min) / (max - min)``, float32."""

    type_name = "workflow.NormalizeMinMax"

    def _shift_scale(self, m: Mapping[str, float]) -> tuple[float, float]:
        return m["min"], (m["max"] - m["min"]) or 1.0


class AddTags(Operator):
    """Add schema tags (e.g. ``Tags.ITEM_ID``) to the selected columns; data unchanged."""

    type_name = "workflow.AddTags"
    has_array_path = True

    def __init__(self, tags: Any = None, offline_only: bool = False) -> None:
        self.tags = [str(getattr(t, "value", t)) for t in as_list(tags)]
        if offline_only:
            self.offline_only = True

    def output_tags(self) -> list[str]:
        return self.tags

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        return [self._decorate(input_schema[n]) for n in names]

    def transform_arrays(self, table: Table) -> Table:
        return table.select(self.input_columns)

    def to_config(self) -> dict[str, Any]:
        return {"tags": self.tags, **self.base_config()}


class AddProperties(AddTags):
    """Add schema properties to the selected columns; data unchanged."""

    type_name = "workflow.AddProperties"

    def __init__(self, properties: dict[str, Any] | None = None, offline_only: bool = False) -> None:
        super().__init__([], offline_only)
        self.properties = dict(properties or {})

    def output_properties(self) -> dict[str, Any]:
        return self.properties

    def to_config(self) -> dict[str, Any]:
        return {"properties": self.properties, **self.base_config()}


class AddMetadata(AddTags):
    """Tags and properties at once."""

    type_name = "workflow.AddMetadata"

    def __init__(self, tags: Any = None, properties: dict[str, Any] | None = None, offline_only: bool = False) -> None:
        super().__init__(tags, offline_only)
        self.properties = dict(properties or {})

    def output_properties(self) -> dict[str, Any]:
        return self.properties

    def to_config(self) -> dict[str, Any]:
        return {"tags": self.tags, "properties": self.properties, **self.base_config()}


class ValueCount(StatOperator):
    """Record the min/max list length of list columns as the schema property ``value_count``."""

    type_name = "workflow.ValueCount"
    has_array_path = True

    def __init__(self, offline_only: bool = False) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        if offline_only:
            self.offline_only = True

    def fit_partition(self, table: Table) -> dict[str, Any]:
        out = {}
        for n in self.input_columns:
            col = table[n]
            if not isinstance(col, Ragged):
                raise OperatorError(f"ValueCount: column {n!r} is not a list column")
            lengths = np.asarray(col.lengths)
            out[n] = (int(lengths.min()) if lengths.size else 0, int(lengths.max()) if lengths.size else 0)
        return out

    def combine(self, partials: list[Any]) -> None:
        self.counts = {n: {"min": min(p[n][0] for p in partials), "max": max(p[n][1] for p in partials)}
                       for n in self.input_columns}
        self.__dict__["_fitted"] = True

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        self.require(input_schema, selected, list_column=True)
        return [self._decorate(input_schema[n].with_properties(
            {**input_schema[n].properties, **({"value_count": self.counts[n]} if n in self.counts else {})}))
            for n in names]

    def transform_arrays(self, table: Table) -> Table:
        return table.select(self.input_columns)

    def stats(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"value_count": self.counts}, {}

    def set_stats(self, data: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
        self.counts = {k: dict(v) for k, v in data["value_count"].items()}
        self.__dict__["_fitted"] = True

    def to_config(self) -> dict[str, Any]:
        return self.base_config()


class ListSlice(Operator):
    """Slice each list: ``[start:end]`` with Python semantics (negative indices count from
    the end). ``pad=True`` pads/truncates to a fixed width ``end - start`` with ``pad_value``."""

    type_name = "workflow.ListSlice"
    has_array_path = True

    def __init__(self, start: int, end: int | None = None, pad: bool = False, pad_value: Any = 0,
                 offline_only: bool = False) -> None:
        if end is None:  # ListSlice(k) is [0:k], as NVTabular
            start, end = 0, start
        for what, value in (("start", start), ("end", end)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):  # 1.9 was sliced as 1
                raise SchemaError(f"ListSlice: {what} must be an integer index, got {value!r}")
        self.start, self.end = int(start), int(end)
        self.pad = bool(pad)
        self.pad_value = pad_value
        if self.pad and not (0 <= self.start < self.end):
            raise SchemaError(
                f"ListSlice: pad=True needs 0 <= start < end (a fixed width), got [{self.start}:{self.end}]"
            )
        if offline_only:
            self.offline_only = True

    @property
    def max_length(self) -> int | None:
        if self.start >= 0 and self.end >= 0:
            return max(self.end - self.start, 0)
        if self.start < 0 and self.end <= 0 and self.end != 0:
            return max(self.end - self.start, 0)
        if self.start < 0 and self.end >= 0:
            return -self.start
        return None

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        self.require(input_schema, selected, list_column=True)
        cols = []
        for n in names:
            src = input_schema[n]
            props = dict(src.properties)
            if self.max_length is not None:
                props["value_count"] = {"min": self.max_length if self.pad else 0, "max": self.max_length}
            if self.pad:
                col = ColumnSchema(n, src.dtype, tags=src.tags, properties=props, dims=(self.max_length,),
                                   is_list=True, is_ragged=False)
            else:
                col = src.with_properties(props)
            cols.append(self._decorate(col))
        return cols

    def _check_pad_value(self, name: str, dtype: np.dtype) -> None:
        """``pad_value`` must be a value of the list's dtype (0.5 padded int lists with 0; a string or
        an out-of-range int failed with numpy's bare ValueError/OverflowError). Checked on the data:
        before ``fit`` the schema of a LambdaOp's output holds a placeholder dtype."""
        value = self.pad_value
        where = f"ListSlice: pad_value={value!r} cannot pad column {name!r} of dtype {dtype}"
        if dtype.kind in "OUS":
            if not isinstance(value, str):
                raise SchemaError(f"{where}; pass a string")
            return
        if isinstance(value, str) or not isinstance(value, (int, float, np.number, bool, np.bool_)):
            raise SchemaError(f"{where}; pass a number")
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if isinstance(value, (float, np.floating)) and not float(value).is_integer():
                raise SchemaError(f"{where} (it is not a whole number)")
            if not info.min <= value <= info.max:
                raise SchemaError(f"{where} (range {info.min}..{info.max})")

    def _slice(self, col: Ragged, name: str) -> Any:
        off = np.asarray(col.offsets).astype(np.int64)
        lengths = off[1:] - off[:-1]
        s = np.where(self.start >= 0, np.minimum(self.start, lengths), np.maximum(lengths + self.start, 0))
        e = np.where(self.end >= 0, np.minimum(self.end, lengths), np.maximum(lengths + self.end, 0))
        e = np.maximum(e, s)
        new_len = e - s
        starts = off[:-1] + s
        new_off = np.zeros(lengths.size + 1, dtype=np.int64)
        np.cumsum(new_len, out=new_off[1:])
        idx = np.repeat(starts - new_off[:-1], new_len) + np.arange(int(new_off[-1]), dtype=np.int64)
        values = np.asarray(col.values)[idx]
        if not self.pad:
            return Ragged(values, new_off.astype(np.asarray(col.offsets).dtype), validate=False)
        self._check_pad_value(name, values.dtype)
        width = self.end - self.start
        dense = np.full((lengths.size, width), self.pad_value, dtype=values.dtype)
        rows = np.repeat(np.arange(lengths.size), new_len)
        cols_ = np.arange(int(new_off[-1])) - np.repeat(new_off[:-1], new_len)
        dense[rows, cols_] = values
        return dense

    def transform_arrays(self, table: Table) -> Table:
        out = {}
        for n in self.input_columns:
            col = table[n]
            if not isinstance(col, Ragged):
                col = Ragged.coerce(col, name=f"ListSlice column {n!r}")
            out[n] = self._slice(col, n)
        return Table(out, num_rows=table.num_rows)

    def to_config(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "pad": self.pad, "pad_value": self.pad_value,
                **self.base_config()}


class Filter(Operator):
    """Keep the rows where ``f(df)`` is True (a boolean Series/array over the selected columns).

    Offline-only by default: a served workflow does not drop rows (a one-click session is
    still answered); pass ``offline_only=False`` to filter at serving too.
    """

    type_name = "workflow.Filter"
    changes_rows = True
    default_offline_only = True

    def __init__(self, f: Any, offline_only: bool = True) -> None:
        self.f = _fn(f)
        self._f_config = dict(f) if isinstance(f, Mapping) else None
        self.offline_only = offline_only

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        return [self._decorate(input_schema[n]) for n in names]

    def transform(self, *args: Any) -> Any:  # type: ignore[override]
        if len(args) == 2:
            return self.transform_df(*args)
        (table,) = args
        frame = table_to_frame(table)
        mask = self.f(frame)
        mask = np.asarray(getattr(mask, "to_numpy", lambda: mask)(), dtype=object)
        if mask.shape != (table.num_rows,):
            raise OperatorError(f"Filter: f returned shape {mask.shape} for {table.num_rows} rows; return one "
                                "boolean per row")
        null = is_null(mask)
        keep = np.where(null, False, mask).astype(bool)
        rows = np.nonzero(keep)[0]
        return _take(table.select(self.input_columns or table.column_names), rows)

    def transform_df(self, col_selector: ColumnSelector, df: Any) -> Any:
        return df[self.f(df)]

    def to_config(self) -> dict[str, Any]:
        return {"f": self._f_config or function_to_config(self.f, "Filter"), "offline_only": self.offline_only}


def _take(table: Table, rows: np.ndarray) -> Table:
    out = {}
    for n, col in table.items():
        out[n] = col.take_rows(rows) if isinstance(col, Ragged) else np.asarray(col)[rows]
    return Table(out, num_rows=int(rows.size))


class DifferenceLag(Operator):
    """``x[i] - x[i - shift]`` within runs of equal ``partition_cols`` (data sorted by them);
    NaN where the lagged row belongs to another partition. Output ``<col>_difference_lag_<s>``."""

    type_name = "workflow.DifferenceLag"
    has_array_path = True

    def __init__(self, partition_cols: Any, shift: int | list[int] = 1, offline_only: bool = False) -> None:
        self.partition_cols = as_list(partition_cols)
        self.shifts = [int(s) for s in as_list(shift)]
        self.shift = shift
        if offline_only:
            self.offline_only = True

    def _nvt_dependencies(self) -> Any:
        return self.partition_cols

    def output_column_names(self, col_selector: ColumnSelector) -> ColumnSelector:
        return ColumnSelector([f"{c}_difference_lag_{s}" for c in col_selector.names for s in self.shifts])

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        self.require(input_schema, selected, dtype_kinds="iuf", list_column=False)
        return [self._decorate(ColumnSchema(n, "float64", tags=[Tags.CONTINUOUS])) for n in names]

    def transform_arrays(self, table: Table) -> Table:
        out = {}
        keys = [np.asarray(table[c]) for c in self.partition_cols]
        n_rows = table.num_rows
        for c in self.input_columns:
            x = np.asarray(table[c]).astype(np.float64)
            for s in self.shifts:
                res = np.full(n_rows, np.nan)
                if 0 < abs(s) < n_rows:
                    src = np.arange(n_rows) - s
                    valid = (src >= 0) & (src < n_rows)
                    idx = np.nonzero(valid)[0]
                    same = np.ones(idx.size, dtype=bool)
                    for k in keys:
                        same &= k[idx] == k[src[idx]]
                    res[idx[same]] = x[idx[same]] - x[src[idx[same]]]
                out[f"{c}_difference_lag_{s}"] = res
        return Table(out, num_rows=n_rows)

    def to_config(self) -> dict[str, Any]:
        return {"partition_cols": self.partition_cols, "shift": self.shift, **self.base_config()}


class JoinExternal(StatOperator):
    """Left-join columns of an external DataFrame (or parquet file) on ``on`` columns.

    The external table is saved with the workflow as parquet. ``how`` is ``"left"`` (every
    row kept, missing matches null) or ``"inner"`` (rows without a match dropped).
    """

    type_name = "workflow.JoinExternal"

    def __init__(self, df_ext: Any = None, on: Any = None, how: str = "left", on_ext: Any = None,
                 columns_ext: list[str] | None = None, drop_duplicates_ext: bool = False,
                 offline_only: bool = False) -> None:
        import pandas as pd  # noqa: PLC0415

        if how not in ("left", "inner"):
            raise SchemaError(f"JoinExternal: how must be 'left' or 'inner', got {how!r}")
        if isinstance(df_ext, str):
            df_ext = pd.read_parquet(df_ext)
        self.on = as_list(on)
        self.on_ext = as_list(on_ext) or self.on
        self.how = how
        self.columns_ext = columns_ext
        self.drop_duplicates_ext = drop_duplicates_ext
        self.df_ext = None
        if df_ext is not None:
            self._set_ext(df_ext)
        if offline_only:
            self.offline_only = True

    changes_rows = True

    def _set_ext(self, df: Any) -> None:
        cols = self.columns_ext or list(df.columns)
        df = df[list(dict.fromkeys([*self.on_ext, *cols]))]
        if self.drop_duplicates_ext:
            df = df.drop_duplicates(self.on_ext)
        if df.duplicated(self.on_ext).any():
            raise SchemaError(
                f"JoinExternal: the external table has duplicate keys in {self.on_ext}; rows would multiply. "
                "Pass drop_duplicates_ext=True or deduplicate it"
            )
        self.df_ext = df.reset_index(drop=True)
        self.__dict__.pop("_ext_lookup", None)
        self.__dict__["_fitted"] = True

    def _nvt_dependencies(self) -> Any:
        return None

    def fit_partition(self, table: Table) -> Any:
        return None

    def combine(self, partials: list[Any]) -> None:
        if self.df_ext is None:
            raise OperatorError("JoinExternal: no external table given")

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        self.require(input_schema, self.on)
        cols = [input_schema[n] for n in selected]
        if self.df_ext is not None:
            table = frame_to_table(self.df_ext.head(1), list(self.df_ext.columns), "JoinExternal")
            from funnel.table import column_schema_of  # noqa: PLC0415

            extra = [c for c in self.df_ext.columns if c not in self.on_ext and c not in selected]
            for c in extra:
                col = column_schema_of(c, table[c])
                if self.how == "left" and col.numpy_dtype.kind in "iub":
                    col = col.with_dtype("float64")  # a row without a match gets NaN (as pandas)
                cols.append(col)
        return cols

    def output_column_names(self, col_selector: ColumnSelector) -> ColumnSelector:
        extra = [] if self.df_ext is None else [c for c in self.df_ext.columns
                                                 if c not in self.on_ext and c not in col_selector.names]
        return ColumnSelector([*col_selector.names, *extra])

    def transform(self, *args: Any) -> Any:  # type: ignore[override]
        if len(args) == 2:
            return self.transform_df(*args)
        (table,) = args
        table = table.select(self.input_columns or table.column_names)
        if len(self.on) == 1 and self.df_ext is not None:
            return self._join_arrays(table)
        frame = table_to_frame(table)
        merged = self.transform_df(ColumnSelector(list(frame.columns)), frame)
        names = list(self.output_column_names(ColumnSelector(list(frame.columns))).names)
        out = frame_to_table(merged, names, self.label)
        if self.how == "left":
            out = Table({k: (v.astype(np.float64) if k not in frame.columns and not isinstance(v, Ragged)
                             and v.dtype.kind in "iub" else v) for k, v in out.items()}, num_rows=out.num_rows)
        return out

    def _join_arrays(self, table: Table) -> Table:
        """Single-key join on numpy arrays (same result as the pandas merge, left order kept)."""
        if "_ext_lookup" not in self.__dict__:
            keys = self.df_ext[self.on_ext[0]].to_numpy()
            order = np.argsort(keys, kind="stable")
            extra = [c for c in self.df_ext.columns if c not in self.on_ext and c not in table.column_names]
            self.__dict__["_ext_lookup"] = (keys[order], order,
                                            {c: self.df_ext[c].to_numpy() for c in extra})
        sorted_keys, order, columns = self.__dict__["_ext_lookup"]
        probe = np.asarray(table[self.on[0]])
        n = sorted_keys.shape[0]
        pos = np.minimum(np.searchsorted(sorted_keys, probe), max(n - 1, 0))
        found = (sorted_keys[pos] == probe) if n else np.zeros(probe.shape[0], dtype=bool)
        rows = order[pos] if n else np.zeros(probe.shape[0], dtype=np.int64)
        if self.how == "inner":
            keep = np.nonzero(found)[0]
            table = _take(table, keep)
            found, rows = found[keep], rows[keep]
        out = dict(table.items())
        for c, values in columns.items():
            taken = values[rows] if values.shape[0] else np.zeros(rows.shape[0], dtype=values.dtype)
            if self.how == "left" and taken.dtype.kind in "iub":
                taken = taken.astype(np.float64)
            if not found.all():
                if taken.dtype.kind in "iub":
                    taken = taken.astype(np.float64)
                elif taken.dtype.kind not in "fOmM":
                    taken = taken.astype(object)
                taken = taken.copy()
                taken[~found] = np.datetime64("NaT") if taken.dtype.kind in "mM" else (
                    None if taken.dtype.kind == "O" else np.nan)
            out[c] = taken
        return Table(out, num_rows=table.num_rows)

    def transform_df(self, col_selector: ColumnSelector, df: Any) -> Any:
        if self.df_ext is None:
            raise OperatorError("JoinExternal: no external table given")
        ext = self.df_ext.rename(columns=dict(zip(self.on_ext, self.on)))
        return df.merge(ext, on=self.on, how=self.how, sort=False)

    def stats(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {"external": self.df_ext}

    def set_stats(self, data: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
        self._set_ext(arrays["external"])

    def to_config(self) -> dict[str, Any]:
        return {"on": self.on, "on_ext": self.on_ext, "how": self.how, "columns_ext": self.columns_ext,
                "drop_duplicates_ext": self.drop_duplicates_ext, **self.base_config()}
