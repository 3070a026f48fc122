"""The workflow operator: a funnel Operator with NVTabular's hooks and an optional fit phase.

Built-in operators implement :meth:`Operator.transform_arrays` (numpy arrays and funnel
``Ragged`` list columns, no DataFrame per request). User subclasses written against
NVTabular's API implement ``transform(col_selector, df)`` (a pandas DataFrame in, a
DataFrame out), ``output_column_names(col_selector)`` and ``dependencies()`` returning
column names: ``__init_subclass__`` maps those onto funnel's operator protocol, so the 2021
form of the Transformers4Rec example (``ItemRecency``) works unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

import funnel.operator
from funnel.errors import OperatorError, SchemaError
from funnel.graph import Dependency, Node
from funnel.schema import ColumnSchema, Schema, Tags
from funnel.selector import ColumnSelector
from funnel.table import Ragged, Table

__all__ = ["Operator", "StatOperator", "table_to_frame", "frame_to_table", "is_null"]


def _is_nvt_transform(fn: Any) -> bool:
    """True for ``transform(self, col_selector, df)`` (NVTabular's signature)."""
    try:
        params = [
            p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    return len(params) >= 3


class Operator(funnel.operator.Operator):
    """Base class of workflow operators (``nvt.ops.Operator``).

    ``offline_only=True`` marks a step that the served workflow skips (it passes its input
    through; an offline-only step that creates columns has them removed from the served
    output schema). :class:`funnel_workflow.ops.Filter` is offline-only by default.
    """

    #: the op learns statistics in :meth:`StatOperator.fit_partition` / ``combine``
    is_stat: ClassVar[bool] = False
    #: output dtypes known only from data (LambdaOp, user ops): recorded at fit
    dynamic_dtypes: ClassVar[bool] = False
    #: group-key columns whose rows must be in one partition (Groupby); None otherwise
    shuffle_keys: ClassVar[None] = None
    #: the built-in array implementation exists (otherwise the DataFrame path runs)
    has_array_path: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "transform" in own and _is_nvt_transform(own["transform"]):
            cls.transform_df = own["transform"]  # type: ignore[method-assign]
            cls.transform = Operator.transform  # type: ignore[method-assign]
            cls.has_array_path = False
            cls.dynamic_dtypes = True
        if "dependencies" in own and own["dependencies"] is not Operator.dependencies:
            cls._nvt_dependencies = own["dependencies"]  # type: ignore[attr-defined]
            cls.dependencies = Operator.dependencies  # type: ignore[method-assign]

    def __copy__(self) -> Operator:
        # A workflow fits the operator instances the user composed (NVTabular semantics:
        # ``workflow.fit`` fills the ops' statistics), so graph binding must not copy them.
        return self

    # -- state shared by all workflow ops (set lazily so user __init__ need not call super) --
    @property
    def offline_only(self) -> bool:
        """Skipped by the served workflow (TransformWorkflow)."""
        return bool(self.__dict__.get("_offline_only", type(self).__dict__.get("default_offline_only", False)))

    @offline_only.setter
    def offline_only(self, value: bool) -> None:
        self.__dict__["_offline_only"] = bool(value)

    @property
    def input_columns(self) -> list[str]:
        """The selected columns (upstream, without dependency columns), known once bound."""
        return list(self.__dict__.get("_input_columns", []))

    @property
    def observed(self) -> dict[str, dict[str, Any]]:
        """Output column name → {"dtype", "is_list"} seen on data at fit (dynamic ops)."""
        return self.__dict__.setdefault("_observed", {})

    # -- NVTabular hooks ----------------------------------------------------------------
    def _nvt_dependencies(self) -> Any:
        return None

    def dependencies(self) -> dict[str, Dependency]:  # type: ignore[override]
        """Funnel dependencies built once from the NVTabular-style ``dependencies()``.

        Column names read columns of the workflow's input (NVTabular semantics); a node or
        selector reads that branch. Attributes holding a :class:`Dependency` count too.
        """
        cache = self.__dict__.get("_deps_cache")
        if cache is None:
            cache = {k: v for k, v in vars(self).items() if isinstance(v, Dependency)}
            raw = self._nvt_dependencies()
            items = [] if raw is None else [raw] if isinstance(raw, (str, Node, ColumnSelector)) else list(raw)
            names = [r for r in items if isinstance(r, str)]
            if names:
                cache["dependencies"] = Dependency(ColumnSelector(names))
            for i, r in enumerate(r for r in items if not isinstance(r, str)):
                if isinstance(r, (Node, ColumnSelector)):
                    cache[f"dependency_{i}"] = Dependency(r)
                else:
                    raise SchemaError(
                        f"{self.label}.dependencies() must return column names, nodes or "
                        f"ColumnSelectors; got {type(r).__name__}"
                    )
            self.__dict__["_deps_cache"] = cache
        return cache

    def output_column_names(self, col_selector: ColumnSelector) -> ColumnSelector:
        """Names of the output columns for the selected input columns (default: the same)."""
        return col_selector

    def output_tags(self) -> list[str]:
        """Tags added to every output column."""
        return []

    def output_properties(self) -> dict[str, Any]:
        """Properties added to every output column."""
        return {}

    # -- schema ---------------------------------------------------------------------------
    def _dependency_columns(self) -> list[str]:
        out: list[str] = []
        for dep in self.dependencies().values():
            out.extend(c for c in (dep.columns or []) if c not in out)
        return out

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        deps = set(self._dependency_columns())
        selected = [c for c in input_schema.column_names if c not in deps]
        self.__dict__["_input_columns"] = selected
        names = list(self.output_column_names(ColumnSelector(selected)).names)
        cols = self.output_columns(input_schema, selected, names)
        return Schema(cols)

    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        """Output ColumnSchemas. The default keeps an input column's dtype/tags when the name
        is unchanged, else uses what was observed at fit (float64 before fit)."""
        cols = []
        for name in names:
            seen = self.observed.get(name)
            base = input_schema.get(name) if name in selected else None
            if seen is not None:
                tags = list(base.tags) if base is not None else []
                if seen["dtype"].startswith("float") and Tags.CATEGORICAL.value not in tags:
                    tags.append(Tags.CONTINUOUS)  # a float feature computed by user code
                col = ColumnSchema(name, seen["dtype"], dims=(None,) if seen["is_list"] else (), tags=tags,
                                   properties=base.properties if base is not None else None)
            elif base is not None and not self.dynamic_dtypes:
                col = base
            else:
                col = ColumnSchema(name, base.dtype if base is not None else "float64",
                                   dims=base.dims if base is not None else ())
            cols.append(self._decorate(col))
        return cols

    def _decorate(self, col: ColumnSchema) -> ColumnSchema:
        tags = list(self.output_tags())
        props = self.output_properties()
        if tags:
            col = col.with_tags([*col.tags, *tags])
        if props:
            col = col.with_properties({**col.properties, **props})
        if col.is_list and Tags.LIST.value not in col.tags:
            col = col.with_tags([*col.tags, Tags.LIST])
        return col

    # -- transform ------------------------------------------------------------------------
    def transform(self, *args: Any) -> Any:  # type: ignore[override]
        """funnel's ``transform(table)``; also NVTabular's ``transform(col_selector, df)``."""
        if len(args) == 2:
            return self.transform_df(*args)
        (table,) = args
        if self.has_array_path:
            return self.transform_arrays(table)
        frame = table_to_frame(table)
        selected = ColumnSelector([c for c in self.input_columns if c in table] or
                                  [c for c in table.column_names if c not in self._dependency_columns()])
        out = self.transform_df(selected, frame)
        names = list(self.output_column_names(selected).names)
        return frame_to_table(out, names, self.label)

    def transform_df(self, col_selector: ColumnSelector, df: Any) -> Any:
        """DataFrame path: pandas in, pandas out (built-ins go through their array path)."""
        if not self.has_array_path:
            raise NotImplementedError(f"{self.label} implements neither transform_arrays nor transform(columns, df)")
        table = frame_to_table(df, list(df.columns), self.label)
        out = self.transform_arrays(table)
        return table_to_frame(out, index=df.index)

    def transform_arrays(self, table: Table) -> Table:
        """Array path: a Table of numpy arrays / Ragged in, a Table out."""
        raise NotImplementedError

    # -- config ---------------------------------------------------------------------------
    def base_config(self) -> dict[str, Any]:
        """Config keys every workflow op carries (offline_only, observed dtypes)."""
        cfg: dict[str, Any] = {}
        if "_offline_only" in self.__dict__:
            cfg["offline_only"] = self.offline_only
        return cfg

    def __repr__(self) -> str:
        return f"{type(self).__name__}()" if not self.has_array_path else super().__repr__()


class StatOperator(Operator):
    """An operator with a fit phase: per-partition partial statistics, then one combine.

    ``fit_partition(table)`` returns plain partial statistics of one partition (numpy
    arrays/dicts); ``combine(partials)`` merges them into the fitted state; ``stats()``
    returns that state as JSON-able data plus named numpy arrays (saved as JSON + .npy /
    parquet), ``set_stats`` restores it.
    """

    is_stat: ClassVar[bool] = True

    @property
    def fitted(self) -> bool:
        """True once combine() or set_stats() ran."""
        return bool(self.__dict__.get("_fitted", False))

    def fit_partition(self, table: Table) -> Any:
        raise NotImplementedError

    def combine(self, partials: list[Any]) -> None:
        raise NotImplementedError

    def stats(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(JSON-able data, {file stem: numpy array or pandas DataFrame})."""
        return {}, {}

    def set_stats(self, data: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def require_fitted(self) -> None:
        if not self.fitted:
            raise OperatorError(
                f"{self.label}: not fitted; call workflow.fit(dataset) first (or load a saved workflow)"
            )


# -- Table <-> pandas ------------------------------------------------------------------------
def table_to_frame(table: Table, index: Any = None) -> Any:
    """A pandas DataFrame of a Table (list columns as object columns of numpy arrays)."""
    import pandas as pd  # noqa: PLC0415

    data: dict[str, Any] = {}
    for name, col in table.items():
        if isinstance(col, Ragged):
            off = np.asarray(col.offsets)
            vals = np.asarray(col.values)
            data[name] = pd.Series([vals[off[i]:off[i + 1]] for i in range(len(off) - 1)], dtype=object)
        else:
            data[name] = np.asarray(col)
    frame = pd.DataFrame(data, index=pd.RangeIndex(table.num_rows))
    if index is not None:
        frame.index = index
    return frame


def frame_to_table(frame: Any, names: Iterable[str], where: str) -> Table:
    """Columns ``names`` of a DataFrame (or Series, for one name) as a Table."""
    import pandas as pd  # noqa: PLC0415

    names = list(names)
    if isinstance(frame, pd.Series):
        frame = frame.to_frame(names[0] if len(names) == 1 else frame.name)
    if not isinstance(frame, pd.DataFrame):
        raise OperatorError(f"{where}: transform must return a pandas DataFrame, got {type(frame).__name__}")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise OperatorError(
            f"{where}: transform did not produce column(s) {missing}; it returned {list(frame.columns)}. "
            "Check output_column_names()"
        )
    out: dict[str, Any] = {}
    for name in names:
        s = frame[name]
        if s.dtype == object and len(s) and isinstance(s.iloc[0], (list, tuple, np.ndarray)):
            out[name] = _series_to_ragged(s, name, where)
        elif s.dtype == object or str(s.dtype) in ("string", "str"):
            out[name] = s.to_numpy(dtype=object)
        elif isinstance(s.dtype, pd.DatetimeTZDtype):
            out[name] = s.dt.tz_localize(None).to_numpy()
        elif str(s.dtype) == "category":
            out[name] = s.astype(s.cat.categories.dtype).to_numpy()
        else:
            out[name] = s.to_numpy()
    return Table(out, num_rows=len(frame))


def _series_to_ragged(s: Any, name: str, where: str) -> Ragged:
    rows = [np.asarray(v) for v in s.tolist()]
    lengths = np.fromiter((r.shape[0] if r.ndim else 1 for r in rows), dtype=np.int64, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    nonempty = [r.reshape(-1) for r in rows if r.size]
    values = np.concatenate(nonempty) if nonempty else np.zeros(0, dtype=np.float64)
    return Ragged(values, offsets, validate=False)


def is_null(values: np.ndarray) -> np.ndarray:
    """Boolean null mask of a numpy array (NaN/NaT for floats/datetimes, None/NaN for objects)."""
    kind = values.dtype.kind
    if kind == "f":
        return np.isnan(values)
    if kind in "mM":
        return np.isnat(values)
    if kind == "O":
        import pandas as pd  # noqa: PLC0415

        return np.asarray(pd.isna(values), dtype=bool)
    return np.zeros(values.shape[0], dtype=bool)
