"""Offline batch scoring on Dask: run a funnel graph over every partition of a dataset.

``DaskExecutor(graph).score("users.parquet", "scores/")`` scores a parquet dataset (or a
dask/pandas DataFrame) on a ``distributed`` cluster — a ``LocalCluster`` or any scheduler
address — and writes the results as parquet with the graph's output schema (list columns
as parquet lists). Nothing is pickled: the graph travels as its ``funnel-graph.json`` (plus,
when asked, a tar of its artifact files); each worker process rebuilds the operators once
through the plugin registry (live clients such as a Feast store are opened there) and
caches them by the graph's digest. Each partition is scored in request-sized batches.

Reproducibility: operators that hold a numpy ``Generator`` (a seeded ``SoftmaxSampling``)
are put back to their freshly loaded state before each partition, so a partition's output
is what a freshly loaded graph returns for it — the same whichever worker runs it, in
whatever order. (A single ``transform()`` over the whole frame draws one random stream
across all rows; deterministic operators give identical results either way.)

Part of ``funnel-scale`` (``pip install funnel-scale``, which brings dask, distributed, pandas,
pyarrow and tqdm); dask and distributed are imported only when an executor is created, so
loading the plugin stays cheap.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from funnel.errors import FunnelError
from funnel.files import GRAPH_FILE

__all__ = ["DaskExecutor", "GraphSpec", "PartitionError", "ScoreResult", "to_arrow", "arrow_schema"]



class PartitionError(FunnelError):
    """Scoring one partition failed; the message names the partition and the batch."""


def _require_dask() -> Any:
    try:
        import dask  # noqa: PLC0415
        import distributed  # noqa: PLC0415, F401
    except ImportError as exc:
        raise FunnelError(
            f"scoring on Dask needs dask and distributed, which are missing ({exc}); they are dependencies "
            "of funnel-scale: pip install funnel-scale (or pip install 'dask[dataframe]' distributed)"
        ) from exc
    return dask


# -- the graph as plain data ---------------------------------------------------------------
@dataclass(frozen=True)
class GraphSpec:
    """What travels to the workers: the graph JSON, where its artifacts are (a directory every
    worker can read) or a tar of them, environment variables to set, and a digest."""

    graph_json: bytes
    digest: str
    artifacts_dir: str | None = None
    archive: bytes | None = None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_directory(
        cls, directory: str | os.PathLike[str], ship_artifacts: bool = False, env: dict[str, str] | None = None
    ) -> GraphSpec:
        """From a directory holding ``funnel-graph.json`` (an ``Ensemble.save`` directory, an
        exported model's version directory, or an export repository with one funnel model)."""
        root = _graph_dir(Path(directory))
        graph_json = (root / GRAPH_FILE).read_bytes()
        artifacts = root / "artifacts"
        h = hashlib.sha256(graph_json)
        archive = None
        if artifacts.is_dir():
            for file in sorted(p for p in artifacts.rglob("*") if p.is_file()):
                st = file.stat()
                h.update(f"{file.relative_to(artifacts)}:{st.st_size}:{st.st_mtime_ns}".encode())
            if ship_artifacts:
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w") as tar:
                    tar.add(artifacts, arcname="artifacts")
                archive = buf.getvalue()
        env = dict(env or {})
        h.update(repr(sorted(env.items())).encode())
        return cls(
            graph_json=graph_json,
            digest=h.hexdigest()[:20],
            artifacts_dir=None if ship_artifacts else str(artifacts.resolve()),
            archive=archive,
            env=env,
        )


def _graph_dir(path: Path) -> Path:
    if (path / GRAPH_FILE).is_file():
        return path
    if path.is_file() and path.name == GRAPH_FILE:
        return path.parent
    found = sorted(p.parent for p in path.glob(f"*/*/{GRAPH_FILE}")) if path.is_dir() else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise FunnelError(
            f"{path} holds several funnel graphs ({', '.join(str(p.relative_to(path)) for p in found)}); "
            "pass the model version directory to score"
        )
    raise FunnelError(
        f"{path} holds no {GRAPH_FILE}: pass a directory written by Ensemble.save() or Ensemble.export()"
    )


# -- worker side ---------------------------------------------------------------------------------
class _Loaded:
    def __init__(self, ensemble: Any) -> None:
        self.ensemble = ensemble
        self.lock = threading.Lock()
        self.fresh = _generator_states(ensemble)


_CACHE: dict[str, _Loaded] = {}
_CACHE_LOCK = threading.Lock()


def _generator_states(ensemble: Any) -> list[tuple[Any, dict[str, Any]]]:
    """``(generator, state)`` of every numpy Generator an operator holds, as loaded."""
    states = []
    for bound in ensemble.graph.op_nodes:
        for value in getattr(bound.node.op, "__dict__", {}).values():
            if isinstance(value, np.random.Generator):
                states.append((value, value.bit_generator.state))
    return states


def _load(spec: GraphSpec) -> _Loaded:
    """The worker process's copy of the graph, built once per digest."""
    loaded = _CACHE.get(spec.digest)
    if loaded is not None:
        return loaded
    with _CACHE_LOCK:
        loaded = _CACHE.get(spec.digest)
        if loaded is None:
            import msgspec  # noqa: PLC0415

            from funnel.ensemble import Ensemble  # noqa: PLC0415

            os.environ.update(spec.env)
            if spec.archive is not None:
                root = Path(tempfile.mkdtemp(prefix=f"funnel-graph-{spec.digest}-"))
                with tarfile.open(fileobj=io.BytesIO(spec.archive)) as tar:
                    tar.extractall(root, filter="data")
                artifacts = root / "artifacts"
            elif spec.artifacts_dir is not None:
                artifacts = Path(spec.artifacts_dir)
            else:  # shipped, but the graph has no artifact files: its operators read none
                artifacts = Path(tempfile.mkdtemp(prefix=f"funnel-graph-{spec.digest}-")) / "artifacts"
            data = msgspec.json.decode(spec.graph_json)
            loaded = _Loaded(Ensemble.from_dict(data, artifacts))
            _CACHE[spec.digest] = loaded
    return loaded


def _score_frame(frame: Any, spec: GraphSpec, batch_size: int, partition: int) -> Any:
    """Score one pandas partition in batches; returns a funnel Table (output schema)."""
    from funnel.schema import Schema  # noqa: PLC0415
    from funnel.table import Table  # noqa: PLC0415

    try:
        loaded = _load(spec)
    except Exception as exc:
        raise PartitionError(
            f"partition {partition}: rebuilding the graph on worker {_worker_name()} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    ens = loaded.ensemble
    rows = len(frame)
    with loaded.lock:
        for generator, state in loaded.fresh:
            generator.bit_generator.state = state
        try:
            # only list columns are shaped by the schema here; scalar columns reach the graph as
            # read, so the request check applies the one lossless casting rule (2.5 is no int)
            lists = Schema([c for c in ens.input_schema if c.is_list])
            table = Table.from_pandas(frame[ens.input_schema.column_names], schema=lists)
        except Exception as exc:
            raise PartitionError(
                f"partition {partition} ({rows} rows): cannot read the request columns "
                f"{ens.input_schema.column_names}: {type(exc).__name__}: {exc}"
            ) from None
        outs = []
        for start in range(0, rows, batch_size):
            stop = min(start + batch_size, rows)
            try:
                outs.append(ens.transform(table.slice(start, stop)))
            except Exception as exc:
                raise PartitionError(
                    f"partition {partition}, rows {start}-{stop - 1} of {rows}: {type(exc).__name__}: {exc}"
                ) from None
    if not outs:
        return None
    return outs[0] if len(outs) == 1 else Table.concat(outs)


def _worker_name() -> str:
    try:
        from distributed import get_worker  # noqa: PLC0415

        return str(get_worker().address)
    except Exception:  # noqa: BLE001
        return f"pid {os.getpid()}"


def _score_to_parquet(frame: Any, spec: GraphSpec, batch_size: int, partition: int, target: str) -> tuple[int, int, float]:
    import pyarrow.parquet as pq  # noqa: PLC0415


    t0 = time.perf_counter()
    out = _score_frame(frame, spec, batch_size, partition)
    schema = _output_schema(spec)
    try:
        table = to_arrow(out, schema)
    except FunnelError as exc:
        raise PartitionError(f"partition {partition}: {exc}") from None
    pq.write_table(table, os.path.join(target, f"part.{partition:05d}.parquet"))
    return partition, table.num_rows, time.perf_counter() - t0


def _score_to_pandas(frame: Any, spec: GraphSpec, batch_size: int, partition_info: dict | None = None) -> Any:


    number = (partition_info or {}).get("number", "?")
    out = _score_frame(frame, spec, batch_size, number)  # type: ignore[arg-type]
    if out is None:
        return _meta(_output_schema(spec))
    result = out.to_pandas()
    result.index = frame.index
    return result


def _output_schema(spec: GraphSpec) -> Any:
    import msgspec  # noqa: PLC0415

    from funnel.schema import Schema  # noqa: PLC0415

    graph = msgspec.json.decode(spec.graph_json)["graph"]
    node = next(n for n in graph["nodes"] if n["index"] == graph["output"])
    return Schema.from_dict(node["output_schema"])


# -- arrow / parquet ----------------------------------------------------------------------------
def _arrow_type(col: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415

    dtype = col.numpy_dtype
    base = pa.string() if dtype.kind in "OUS" else pa.from_numpy_dtype(dtype)
    inner = [d for d in col.dims[1:]] if col.is_list else list(col.dims)
    for d in reversed(inner):
        base = pa.list_(base, d) if d is not None else pa.list_(base)
    return pa.list_(base) if col.is_list else base


def arrow_schema(schema: Any) -> Any:
    """The pyarrow schema of a funnel Schema (list columns → ``list<…>``, strings → ``string``)."""
    import pyarrow as pa  # noqa: PLC0415

    return pa.schema([pa.field(c.name, _arrow_type(c)) for c in schema])


def _values_array(values: np.ndarray, col: Any, typ: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415

    from funnel.casting import cast_lossless  # noqa: PLC0415

    want = col.numpy_dtype
    if want.kind not in "OUS":
        values = cast_lossless(values, want, column=col.name, where="writing parquet")
    if values.ndim == 1:
        return pa.array(values, type=typ) if want.kind in "OUS" else pa.array(values)
    width = values.shape[1]
    inner = _values_array(values.reshape(values.shape[0] * width, *values.shape[2:]), col, typ.value_type)
    return pa.FixedSizeListArray.from_arrays(inner, width)


def to_arrow(table: Any, schema: Any) -> Any:
    """A funnel Table as a pyarrow Table with :func:`arrow_schema` (``None`` → empty table)."""
    import pyarrow as pa  # noqa: PLC0415

    from funnel.table import Ragged, to_numpy  # noqa: PLC0415

    target = arrow_schema(schema)
    if table is None:
        return target.empty_table()
    arrays = []
    for col, fld in zip(schema, target):
        value = table[col.name]
        typ = fld.type
        if col.is_list:
            if isinstance(value, Ragged):
                values, offsets = to_numpy(value.values), to_numpy(value.offsets)
            else:
                arr = to_numpy(value)
                if arr.ndim < 2:
                    raise FunnelError(f"output column {col.name!r} is declared a list column but holds one value per row")
                values = arr.reshape(arr.shape[0] * arr.shape[1], *arr.shape[2:])
                offsets = np.arange(0, values.shape[0] + 1, arr.shape[1], dtype=np.int64)
            if offsets[-1] > np.iinfo(np.int32).max:
                raise FunnelError(f"output column {col.name!r}: more than 2**31 list values in one partition; use more partitions")
            inner = _values_array(np.asarray(values), col, typ.value_type)
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), inner))
        else:
            if isinstance(value, Ragged):
                raise FunnelError(f"output column {col.name!r} holds lists but its schema says one value per row")
            arrays.append(_values_array(to_numpy(value), col, typ))
    try:
        return pa.Table.from_arrays(arrays, schema=target)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise FunnelError(f"the graph's output does not match its output schema {target}: {exc}") from exc


def _meta(schema: Any) -> Any:
    import pandas as pd  # noqa: PLC0415

    data = {}
    for c in schema:
        dtype = object if c.is_list or c.numpy_dtype.kind in "OUS" else c.numpy_dtype
        data[c.name] = pd.Series([], dtype=dtype)
    return pd.DataFrame(data)


# -- client side -------------------------------------------------------------------------------
@dataclass
class ScoreResult:
    """What :meth:`DaskExecutor.score` wrote."""

    output: Path
    partitions: int
    rows: int
    seconds: float
    files: list[Path]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


class DaskExecutor:
    """Maps a funnel graph over the partitions of a dataset on a Dask cluster.

    ``graph``: an :class:`~funnel.ensemble.Ensemble` (saved to a temporary directory and
    shipped to the workers as a tar of its artifacts), or a path to a directory holding
    ``funnel-graph.json`` (``Ensemble.save`` output, or an export). ``client``: a
    ``distributed.Client``; else ``scheduler`` (an address such as ``tcp://host:8786``);
    else a ``LocalCluster`` with one single-threaded worker process per core is started and
    closed with the executor. ``ship_artifacts``: send the artifact files to the workers
    (default: only for an in-memory Ensemble; a path must be readable on every worker
    otherwise). ``env``: environment variables set in each worker before the graph loads
    (e.g. ``FUNNEL_FEAST_REPO_PATH``). ``batch_size``: rows per ``transform()`` call.
    """

    def __init__(
        self,
        graph: Any,
        client: Any = None,
        scheduler: str | None = None,
        batch_size: int = 256,
        ship_artifacts: bool | None = None,
        env: dict[str, str] | None = None,
        n_workers: int | None = None,
    ) -> None:
        _require_dask()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise FunnelError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if hasattr(graph, "save") and hasattr(graph, "graph"):
            self._tmp = tempfile.TemporaryDirectory(prefix="funnel-dask-graph-")
            graph.save(self._tmp.name, overwrite=True)
            directory = Path(self._tmp.name)
            ship = True if ship_artifacts is None else ship_artifacts
        else:
            directory = Path(graph)
            ship = bool(ship_artifacts)
        self.spec = GraphSpec.from_directory(directory, ship_artifacts=ship, env=env)
        import msgspec  # noqa: PLC0415

        from funnel.schema import Schema  # noqa: PLC0415

        graph_data = msgspec.json.decode(self.spec.graph_json)["graph"]
        self.input_schema = Schema.from_dict(graph_data["request_schema"])
        self.output_schema = _output_schema(self.spec)
        self._own_cluster = None
        if client is None:
            from distributed import Client, LocalCluster  # noqa: PLC0415

            if scheduler is not None:
                client = Client(scheduler)
            else:
                self._own_cluster = LocalCluster(
                    n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                    dashboard_address=":0", host="127.0.0.1",
                )
                client = Client(self._own_cluster)
            self._own_client = client
        else:
            self._own_client = None
        self.client = client

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the client and cluster this executor started; remove its temporary files."""
        if self._own_client is not None:
            self._own_client.close()
            self._own_client = None
        if self._own_cluster is not None:
            self._own_cluster.close()
            self._own_cluster = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inputs -------------------------------------------------------------------------------
    def _dataframe(self, source: Any, npartitions: int | None) -> Any:
        import dask.dataframe as dd  # noqa: PLC0415

        columns = self.input_schema.column_names
        if isinstance(source, (str, os.PathLike, list)):
            try:
                ddf = dd.read_parquet(source, columns=columns)
            except Exception as exc:
                raise FunnelError(
                    f"cannot read the request columns {columns} from parquet {source}: {type(exc).__name__}: {exc}"
                ) from exc
        elif type(source).__module__.startswith("pandas"):
            import dask  # noqa: PLC0415

            # dask turns object columns into strings by default: a list column would reach the
            # graph as "[1, 2]"; keep the objects (lists, arrays, str) as pandas holds them
            with dask.config.set({"dataframe.convert-string": False}):
                ddf = dd.from_pandas(source, npartitions=npartitions or max(1, len(self.client.nthreads())))
        elif hasattr(source, "to_delayed") and hasattr(source, "npartitions"):
            ddf = source
        else:
            raise FunnelError(
                f"source must be a parquet path, a pandas or a dask DataFrame, got {type(source).__name__}"
            )
        missing = [c for c in columns if c not in ddf.columns]
        if missing:
            raise FunnelError(f"the dataset lacks request column(s) {missing}; the graph expects {columns}")
        if npartitions is not None and ddf.npartitions != npartitions:
            ddf = ddf.repartition(npartitions=npartitions)
        return ddf[columns]

    # -- scoring ------------------------------------------------------------------------------
    def transform(self, source: Any, npartitions: int | None = None) -> Any:
        """A lazy dask DataFrame of the graph's output for ``source`` (list columns hold lists)."""
        ddf = self._dataframe(source, npartitions)
        return ddf.map_partitions(
            _score_to_pandas, self.spec, self.batch_size, meta=_meta(self.output_schema), enforce_metadata=False
        )

    def score(
        self,
        source: Any,
        output: str | os.PathLike[str],
        npartitions: int | None = None,
        overwrite: bool = False,
        progress: bool | Callable[[int, int], None] = True,
    ) -> ScoreResult:
        """Score ``source`` (parquet path, pandas or dask DataFrame) and write ``output``
        (a directory of ``part.NNNNN.parquet`` files, one per partition, in partition order).

        ``output`` must be readable and writable by every worker (local disk for a
        LocalCluster, a shared file system otherwise). A non-empty ``output`` is refused
        unless ``overwrite``; files appear there only once every partition succeeded.
        ``progress``: a tqdm bar (True), nothing (False) or ``callback(done, total)``.
        A failing partition raises :class:`PartitionError` naming it.
        """
        import dask  # noqa: PLC0415
        from distributed import as_completed  # noqa: PLC0415

        out = Path(output)
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
            raise FunnelError(f"{out} is not empty; pass overwrite=True (--overwrite) to replace it")
        ddf = self._dataframe(source, npartitions)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        t0 = time.perf_counter()
        try:
            parts = ddf.to_delayed()
            spec = self.client.scatter(self.spec, broadcast=True, hash=False)
            tasks = [
                dask.delayed(_score_to_parquet)(part, spec, self.batch_size, i, str(staging), dask_key_name=f"funnel-score-{i}-{uuid.uuid4().hex[:6]}")
                for i, part in enumerate(parts)
            ]
            futures = self.client.compute(tasks)
            bar = _progress_bar(progress, len(futures))
            rows = 0
            try:
                for done, fut in enumerate(as_completed(futures), 1):
                    _, n, _ = fut.result()
                    rows += n
                    bar(done, len(futures))
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
            finally:
                bar(-1, len(futures))
            if out.exists():
                shutil.rmtree(out) if out.is_dir() else out.unlink()
            os.replace(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        files = sorted(out.glob("part.*.parquet"))
        return ScoreResult(out, len(files), rows, time.perf_counter() - t0, files)


def _progress_bar(progress: bool | Callable[[int, int], None], total: int) -> Callable[[int, int], None]:
    if callable(progress):
        user = progress
        return lambda done, n: user(done, n) if done >= 0 else None
    if not progress:
        return lambda done, n: None
    try:
        from tqdm.auto import tqdm  # noqa: PLC0415
    except ImportError:
        return lambda done, n: None
    bar = tqdm(total=total, desc="funnel score", unit="partition")

    def update(done: int, n: int) -> None:
        if done < 0:
            bar.close()
        else:
            bar.update(done - bar.n)

    return update
