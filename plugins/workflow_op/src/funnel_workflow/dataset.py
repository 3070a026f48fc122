"""Dataset: pandas DataFrames, parquet files/directories or Dask DataFrames, as partitions.

Each partition is a funnel :class:`~funnel.table.Table`. In-memory data and parquet files
are partitioned eagerly (one partition per file, or ``npartitions`` slices of a DataFrame);
a Dask DataFrame (or ``engine="dask"`` for parquet) keeps its partitions as ``dask.delayed``
objects, so workflows fit and transform them on the active Dask scheduler (a
``distributed`` cluster when a Client exists).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from funnel.errors import SchemaError
from funnel.schema import ColumnSchema, Schema
from funnel.table import Ragged, Table, schema_of

from funnel_workflow.base import frame_to_table

__all__ = ["Dataset"]


def _is_dask(obj: Any) -> bool:
    return type(obj).__module__.split(".", 1)[0] in ("dask", "dask_cudf", "dask_expr")


def _parquet_files(source: Any) -> list[Path]:
    paths = [source] if isinstance(source, (str, Path)) else list(source)
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.parquet") if f.is_file())
            if not found:
                raise SchemaError(f"Dataset: directory {p} holds no .parquet files")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise SchemaError(f"Dataset: {p} does not exist (expected a parquet file or directory)")
    return files


def _read_parquet(path: Path) -> Table:
    import pandas as pd  # noqa: PLC0415

    frame = pd.read_parquet(path)
    return frame_to_table(frame, list(frame.columns), f"Dataset({path})")


def _frame_to_table(frame: Any) -> Table:
    frame = frame.reset_index(drop=True)
    return frame_to_table(frame, [str(c) for c in frame.columns], "Dataset")


class Dataset:
    """Data for ``Workflow.fit``/``transform`` (``nvt.Dataset``).

    ``Dataset(df)``, ``Dataset(df, npartitions=4)``, ``Dataset("dir/" or ["a.parquet", ...])``,
    ``Dataset(dask_df)``, ``Dataset(path, engine="dask")``. ``compute()`` returns one pandas
    DataFrame, ``to_ddf()`` a Dask DataFrame, ``to_parquet(dir)`` writes one file per partition.
    """

    def __init__(self, source: Any = None, npartitions: int | None = None, engine: str | None = None,
                 **unused: Any) -> None:
        import pandas as pd  # noqa: PLC0415

        self._delayed = False
        self._schema: Schema | None = None
        if isinstance(source, Dataset):
            self._parts, self._delayed, self._schema = source._parts, source._delayed, source._schema
            return
        if isinstance(source, Table):
            self._parts = [source]
        elif isinstance(source, pd.DataFrame):
            n = max(int(npartitions or 1), 1)
            bounds = np.linspace(0, len(source), n + 1).astype(int)
            self._parts = [_frame_to_table(source.iloc[bounds[i]:bounds[i + 1]]) for i in range(n)]
        elif _is_dask(source):
            import dask  # noqa: PLC0415

            self._parts = [dask.delayed(_frame_to_table)(p) for p in source.to_delayed()]
            self._delayed = True
            self._schema = schema_of(_frame_to_table(source._meta))
        elif isinstance(source, (str, Path)) or (isinstance(source, Sequence) and source
                                                  and all(isinstance(s, (str, Path)) for s in source)):
            files = _parquet_files(source)
            if engine == "dask":
                import dask  # noqa: PLC0415

                self._parts = [dask.delayed(_read_parquet)(f) for f in files]
                self._delayed = True
                self._schema = schema_of(_read_parquet(files[0]).slice(0, 0)) if files else None
            else:
                self._parts = [_read_parquet(f) for f in files]
        elif isinstance(source, Sequence) and all(isinstance(s, pd.DataFrame) for s in source):
            self._parts = [_frame_to_table(s) for s in source]
        else:
            raise SchemaError(
                "Dataset takes a pandas DataFrame, a funnel Table, parquet file(s)/directory or a Dask "
                f"DataFrame; got {type(source).__name__}"
            )

    @classmethod
    def from_partitions(cls, parts: list[Any], delayed: bool, schema: Schema | None = None) -> Dataset:
        """A Dataset of already-built partitions (Tables, or delayed Tables)."""
        ds = cls.__new__(cls)
        ds._parts, ds._delayed, ds._schema = list(parts), delayed, schema
        return ds

    @property
    def is_dask(self) -> bool:
        """Partitions are dask.delayed objects."""
        return self._delayed

    @property
    def npartitions(self) -> int:
        return len(self._parts)

    @property
    def partitions(self) -> list[Any]:
        """The partitions: Tables, or delayed Tables."""
        return self._parts

    @property
    def schema(self) -> Schema:
        """Column schemas of the data (from the first partition)."""
        if self._schema is None:
            if not self._parts:
                raise SchemaError("Dataset has no partitions")
            first = self._parts[0].compute() if self._delayed else self._parts[0]
            self._schema = schema_of(first)
        return self._schema

    def to_table(self) -> Table:
        """All partitions in one funnel Table."""
        parts = list(self._compute_parts())
        return Table.concat(parts) if parts else Table()

    def _compute_parts(self) -> list[Table]:
        if self._delayed:
            import dask  # noqa: PLC0415

            return list(dask.compute(*self._parts))
        return self._parts

    def compute(self) -> Any:
        """All rows as one pandas DataFrame (list columns hold Python lists)."""
        return _to_pandas(self.to_table())

    def to_ddf(self) -> Any:
        """A Dask DataFrame with one partition per partition of this Dataset."""
        import dask  # noqa: PLC0415
        import dask.dataframe as dd  # noqa: PLC0415

        parts = self._parts if self._delayed else [dask.delayed(p) for p in self._parts]
        meta = _meta(self._schema) if self._schema is not None else _to_pandas(
            (self._parts[0].compute() if self._delayed else self._parts[0]).slice(0, 0))
        return dd.from_delayed([dask.delayed(_to_pandas)(p) for p in parts], meta=meta, verify_meta=False)

    def to_parquet(self, output_path: str | Path, **unused: Any) -> Path:
        """Write ``part_<i>.parquet`` per partition into ``output_path`` (created)."""
        out = Path(output_path)
        out.mkdir(parents=True, exist_ok=True)
        if self._delayed:
            import dask  # noqa: PLC0415

            dask.compute(*[dask.delayed(_write_part)(p, out / f"part_{i}.parquet") for i, p in enumerate(self._parts)])
        else:
            for i, p in enumerate(self._parts):
                _write_part(p, out / f"part_{i}.parquet")
        return out

    def __repr__(self) -> str:
        kind = "dask" if self._delayed else "in-memory"
        return f"Dataset({self.npartitions} {kind} partition(s))"


def _write_part(table: Table, path: Path) -> None:
    _to_pandas(table).to_parquet(path, index=False)


def _to_pandas(table: Table) -> Any:
    import pandas as pd  # noqa: PLC0415

    data: dict[str, Any] = {}
    for name, col in table.items():
        if isinstance(col, Ragged):
            data[name] = pd.Series(col.to_lists(), dtype=object)
        else:
            arr = np.asarray(col)
            data[name] = list(arr) if arr.ndim > 1 else arr
    return pd.DataFrame(data, index=pd.RangeIndex(table.num_rows))


def _meta(schema: Schema) -> Any:
    import pandas as pd  # noqa: PLC0415

    def dtype(c: ColumnSchema) -> Any:
        return object if c.is_list or c.dtype == "str" else c.numpy_dtype

    return pd.DataFrame({c.name: pd.Series([], dtype=dtype(c)) for c in schema})
