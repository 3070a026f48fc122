"""QueryFaiss: query vectors (B, d) → one list of the top-k item ids per request row."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import faiss
import msgspec
import numpy as np

from funnel.errors import ArtifactError, SchemaError
from funnel.operator import Operator
from funnel.schema import ColumnSchema, Schema, Tags
from funnel.table import Ragged, Table, to_numpy

__all__ = ["QueryFaiss", "INDEX_FILE", "read_index"]

#: File name of the index inside the operator's artifact directory.
INDEX_FILE = "index.faiss"
_MMAP_FLAGS = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_MMAP_IFC


def read_index(path: str | Path) -> faiss.Index:
    """Read a FAISS index file, memory-mapped where FAISS can (IVF lists, flat codes).

    Falls back to a plain read when the memory-mapped read fails; a missing or unreadable
    file raises ArtifactError naming the path.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            f"FAISS index file {path} does not exist; write it with funnel_faiss.build_index(..., path=...) "
            "or save the ensemble again"
        )
    try:
        return faiss.read_index(str(path), _MMAP_FLAGS)
    except RuntimeError:
        pass
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise ArtifactError(f"FAISS index file {path} is corrupt or not a FAISS index: {exc}") from exc


def _unwrap(index: faiss.Index) -> faiss.Index:
    """The index under IDMap/PreTransform wrappers (where search parameters live)."""
    index = faiss.downcast_index(index)
    while isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexPreTransform)):
        inner = index.index
        index = faiss.downcast_index(inner)
    return index


def _is_gpu_index(index: faiss.Index) -> bool:
    return "Gpu" in type(faiss.downcast_index(index)).__name__


def _gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class QueryFaiss(Operator):
    """Retrieve the ``topk`` nearest items of each query vector from a FAISS index.

    Input: one query-vector column (``query_col``; by default the single input column), a
    dense (B, d) float array (float64/float16 are cast to float32). Output:
    ``output_col`` (default ``"candidate_ids"``), a ragged int64 list column with one list
    per request row, best first. Where FAISS finds fewer than ``topk`` items (a small
    index, a sparse IVF probe) it pads with -1; those entries are dropped, so such rows are
    shorter than ``topk`` — an id of -1 is never passed on. With ``include_distances`` the
    scores come as ``distance_col`` (float32, same offsets): inner products for ``ip``
    indexes (higher is closer), squared L2 distances for ``l2`` indexes (lower is closer).

    ``index`` is a path to a FAISS index file (read memory-mapped) or an in-memory
    ``faiss.Index``; on export the index is written as ``index.faiss`` next to the model.
    ``nprobe`` (IVF) and ``ef_search`` (HNSW) override what the index file stores; they are
    set on the index this operator holds — for an in-memory index passed in, on a copy of it
    (``faiss.clone_index``), so the caller's object is never changed. ``use_gpu="auto"`` moves the index to the GPU at
    load when FAISS reports GPUs (faiss-gpu builds); ``True`` requires it, ``False`` never.
    """

    type_name: ClassVar[str] = "faiss.QueryFaiss"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """What ``to_config`` writes; checked strictly (every key, no defaults) when an export loads."""

        topk: int
        nprobe: int | None
        ef_search: int | None
        query_col: str | None
        output_col: str
        include_distances: bool
        distance_col: str
        use_gpu: bool | str
        dimension: int | None

    def __init__(
        self,
        index: str | Path | faiss.Index | None,
        topk: int = 10,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        query_col: str | None = None,
        output_col: str = "candidate_ids",
        include_distances: bool = False,
        distance_col: str = "candidate_distances",
        use_gpu: bool | str = "auto",
        dimension: int | None = None,
    ) -> None:
        if not isinstance(topk, int) or isinstance(topk, bool) or topk < 1:
            raise SchemaError(f"QueryFaiss: topk must be a positive integer, got {topk!r}")
        if use_gpu not in ("auto", True, False):
            raise SchemaError(f"QueryFaiss: use_gpu must be 'auto', True or False, got {use_gpu!r}")
        self.topk = topk
        self.nprobe = nprobe
        self.ef_search = ef_search
        self.query_col = query_col
        self.output_col = output_col
        self.include_distances = include_distances
        self.distance_col = distance_col
        self.use_gpu = use_gpu
        self.dimension = dimension
        self.index: faiss.Index | None = None
        self.on_gpu = False
        self._source_path: Path | None = None
        if isinstance(index, (str, Path)):
            self._source_path = Path(index)
            self._set_index(read_index(self._source_path))
        elif index is not None:
            if not isinstance(index, faiss.Index):
                raise SchemaError(
                    f"QueryFaiss: index must be a path to a FAISS index file or a faiss.Index, got {type(index).__name__}"
                )
            if nprobe is not None or ef_search is not None:
                # search parameters live on the index object: set them on this operator's own
                # copy, never on the caller's index (which may serve other code or operators)
                index = faiss.clone_index(faiss.index_gpu_to_cpu(index) if _is_gpu_index(index) else index)
            self._set_index(index)

    # -- index handling -----------------------------------------------------------------
    def _set_index(self, index: faiss.Index) -> None:
        if self.dimension is not None and index.d != self.dimension:
            raise ArtifactError(
                f"QueryFaiss: the index has dimension {index.d} but this operator was configured for "
                f"{self.dimension}; rebuild the index or the graph"
            )
        self.dimension = int(index.d)
        inner = _unwrap(index)
        if self.nprobe is not None:
            ivf = faiss.try_extract_index_ivf(index)
            if ivf is None:
                raise SchemaError(f"QueryFaiss: nprobe is set but the index ({type(inner).__name__}) is not an IVF index")
            ivf.nprobe = self.nprobe
        if self.ef_search is not None:
            if not hasattr(inner, "hnsw"):
                raise SchemaError(
                    f"QueryFaiss: ef_search is set but the index ({type(inner).__name__}) is not an HNSW index"
                )
            inner.hnsw.efSearch = self.ef_search
        self.on_gpu = False
        if self.use_gpu is True or (self.use_gpu == "auto" and _gpu_available()):
            index = self._to_gpu(index)
        self.index = index

    def _to_gpu(self, index: faiss.Index) -> faiss.Index:
        """Copy the index to every GPU FAISS sees (search params are copied along)."""
        if not _gpu_available():
            raise ArtifactError("QueryFaiss: use_gpu=True but FAISS reports no GPU (install faiss-gpu)")
        try:
            gpu_index = faiss.index_cpu_to_all_gpus(index)
        except RuntimeError as exc:  # e.g. HNSW has no GPU implementation
            if self.use_gpu is True:
                raise ArtifactError(f"QueryFaiss: cannot move {type(_unwrap(index)).__name__} to the GPU: {exc}") from exc
            warnings.warn(f"QueryFaiss: index stays on the CPU ({exc})", stacklevel=3)
            return index
        self.on_gpu = True
        return gpu_index

    def _cpu_index(self) -> faiss.Index:
        assert self.index is not None
        return faiss.index_gpu_to_cpu(self.index) if self.on_gpu else self.index

    def _require_index(self) -> faiss.Index:
        if self.index is None:
            raise ArtifactError("QueryFaiss: no index loaded; call load_artifacts(directory) or pass an index")
        return self.index

    # -- schema -------------------------------------------------------------------------
    def _query_name(self, names: list[str]) -> str:
        if self.query_col is not None:
            return self.query_col
        if len(names) != 1:
            raise SchemaError(
                f"QueryFaiss: {len(names)} input columns {names}; pass query_col= to say which "
                "one holds the query vectors"
            )
        return names[0]

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        name = self._query_name(input_schema.column_names)
        (col,) = self.require(input_schema, [name], dtype_kinds="f")
        dims = col.dims
        d = self.dimension
        if not dims or len(dims) != 1 or (d is not None and dims[0] is not None and dims[0] != d):
            raise SchemaError(
                f"QueryFaiss: column {name!r} must hold one query vector of {d if d is not None else 'd'} floats "
                f"per row (dims=({d if d is not None else 'd'},)); got dims={dims}. Expected dimension: {d}"
            )
        out = [ColumnSchema(self.output_col, "int64", tags=[Tags.ITEM_ID, Tags.CANDIDATES], dims=(None,),
                            is_list=True, is_ragged=True)]
        if self.include_distances:
            out.append(ColumnSchema(self.distance_col, "float32", tags=[Tags.SCORE], dims=(None,),
                                    is_list=True, is_ragged=True))
        return Schema(out)

    # -- run ----------------------------------------------------------------------------
    def _queries(self, table: Table) -> np.ndarray:
        name = self._query_name(table.column_names)
        col = table[name]
        d = self.dimension
        if isinstance(col, Ragged):
            lengths = to_numpy(col.lengths)
            if lengths.size and np.all(lengths == d):
                col = to_numpy(col.values).reshape(lengths.size, d)
            else:
                raise SchemaError(
                    f"QueryFaiss: column {name!r} holds lists of lengths {sorted(set(lengths.tolist()))[:5]}; "
                    f"every row must be a query vector of dimension {d}"
                )
        x = to_numpy(col)
        if x.ndim != 2 or x.shape[1] != d:
            raise SchemaError(
                f"QueryFaiss: column {name!r} has shape {x.shape}; expected (rows, {d}) query vectors of "
                f"dimension {d}, the index's dimension"
            )
        if x.dtype != np.float32:
            if x.dtype.kind != "f":
                raise SchemaError(f"QueryFaiss: column {name!r} has dtype {x.dtype}; expected float32 query vectors")
            x = x.astype(np.float32)
        return np.ascontiguousarray(x)

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One ``index.search`` call for the whole batch: (distances, ids), both (B, topk)."""
        return self._require_index().search(queries, self.topk)

    def transform(self, table: Table) -> Table:
        index = self._require_index()
        x = self._queries(table)
        b = x.shape[0]
        if b == 0:
            empty = Ragged(np.zeros(0, np.int64), np.zeros(1, np.int64), validate=False)
            cols: dict[str, Any] = {self.output_col: empty}
            if self.include_distances:
                cols[self.distance_col] = Ragged(np.zeros(0, np.float32), empty.offsets, validate=False)
            return Table(cols, num_rows=0)
        dist, ids = index.search(x, self.topk)
        valid = ids != -1
        if valid.all():
            id_col = Ragged.from_dense(ids)
            out = {self.output_col: id_col}
            if self.include_distances:
                out[self.distance_col] = Ragged(dist.reshape(-1), id_col.offsets, validate=False)
        else:
            offsets = np.zeros(b + 1, dtype=np.int64)
            np.cumsum(valid.sum(axis=1), out=offsets[1:])
            out = {self.output_col: Ragged(ids[valid], offsets, validate=False)}
            if self.include_distances:
                out[self.distance_col] = Ragged(dist[valid], offsets, validate=False)
        return Table(out, num_rows=b)

    # -- export -------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {
            "topk": self.topk,
            "nprobe": self.nprobe,
            "ef_search": self.ef_search,
            "query_col": self.query_col,
            "output_col": self.output_col,
            "include_distances": self.include_distances,
            "distance_col": self.distance_col,
            "use_gpu": self.use_gpu,
            "dimension": self.dimension,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> QueryFaiss:
        return cls(None, **dict(config))

    def save_artifacts(self, directory: Path) -> None:
        target = Path(directory) / INDEX_FILE
        if self._source_path is not None and self._source_path.is_file():
            if self._source_path.resolve() != target.resolve():
                shutil.copyfile(self._source_path, target)
            return
        self._require_index()
        faiss.write_index(self._cpu_index(), str(target))

    def load_artifacts(self, directory: Path) -> None:
        path = Path(directory) / INDEX_FILE
        self._set_index(read_index(path))
        self._source_path = path
