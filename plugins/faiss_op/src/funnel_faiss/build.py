"""build_index: item embeddings + item ids → a FAISS index file QueryFaiss (and plain FAISS) reads."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from funnel.errors import SchemaError

__all__ = ["build_index", "default_nlist"]

#: Builds of at least this many vectors print progress when ``progress`` is left as None.
PROGRESS_THRESHOLD = 200_000
_CHUNK = 100_000
_METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


def default_nlist(n: int) -> int:
    """IVF list count for ``n`` vectors: about 4·√n, but at least 39 training points per list."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def build_index(
    embeddings: Any,
    ids: Any = None,
    path: str | Path | None = None,
    kind: Literal["flat", "ivf", "hnsw"] = "flat",
    metric: Literal["ip", "l2"] = "ip",
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_construction: int = 80,
    ef_search: int = 128,
    progress: bool | None = None,
    seed: int = 1234,
) -> faiss.Index:
    """Build a FAISS index over item ``embeddings`` (N, d) that returns item ``ids``.

    - ``ids``: (N,) integers, the ids searches return (default ``0..N-1``). They are kept by
      an ``IndexIDMap2`` (flat, hnsw) or by the IVF lists themselves (ivf); they need not be
      contiguous but must not be -1 (FAISS's "no result" marker).
    - ``kind``: ``"flat"`` (exact), ``"ivf"`` (IndexIVFFlat; ``nlist`` defaults to
      :func:`default_nlist`, ``nprobe`` to ``max(1, nlist // 16)``, trained on at most
      256 vectors per list) or ``"hnsw"`` (IndexHNSWFlat with ``hnsw_m`` links,
      ``ef_construction``; ``ef_search`` is stored in the index).
    - ``metric``: ``"ip"`` (inner product; normalize the vectors yourself for cosine) or
      ``"l2"`` (squared Euclidean distances).
    - ``path``: when given, the index is written there (parent directories created); the
      file is a plain FAISS index, readable by ``faiss.read_index``.
    - ``progress``: print progress to stderr (default: for builds of ≥ 200k vectors).

    Returns the (CPU) index.
    """
    x = np.ascontiguousarray(np.asarray(embeddings), dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise SchemaError(f"build_index: embeddings must be a non-empty (N, d) array, got shape {x.shape}")
    n, d = x.shape
    item_ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids)
    if item_ids.shape != (n,) or (n and item_ids.dtype.kind not in "iu"):
        raise SchemaError(
            f"build_index: ids must be {n} integers (one per embedding row), got shape {item_ids.shape} "
            f"dtype {item_ids.dtype}"
        )
    item_ids = np.ascontiguousarray(item_ids, dtype=np.int64)
    if np.any(item_ids == -1):
        raise SchemaError("build_index: id -1 is FAISS's 'no result' marker and cannot be an item id; remap it")
    if metric not in _METRICS:
        raise SchemaError(f"build_index: metric must be 'ip' or 'l2', got {metric!r}")
    faiss_metric = _METRICS[metric]
    show = (n >= PROGRESS_THRESHOLD) if progress is None else progress
    start = time.perf_counter()

    def say(message: str) -> None:
        if show:
            print(f"[funnel-faiss] {kind} n={n} d={d}: {message} ({time.perf_counter() - start:.1f} s)",
                  file=sys.stderr, flush=True)

    index: faiss.Index
    if kind == "flat":
        flat = faiss.IndexFlatIP(d) if metric == "ip" else faiss.IndexFlatL2(d)
        index = faiss.IndexIDMap2(flat)
    elif kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(d, hnsw_m, faiss_metric)
        hnsw.hnsw.efConstruction = ef_construction
        hnsw.hnsw.efSearch = ef_search
        index = faiss.IndexIDMap2(hnsw)
    elif kind == "ivf":
        lists = nlist or default_nlist(n)
        quantizer = faiss.IndexFlatIP(d) if metric == "ip" else faiss.IndexFlatL2(d)
        ivf = faiss.IndexIVFFlat(quantizer, d, lists, faiss_metric)
        ivf.own_fields = True
        quantizer.this.disown()  # the IVF index owns (and frees) its quantizer
        ivf.nprobe = nprobe or max(1, lists // 16)
        train = x
        if n > 256 * lists:
            rng = np.random.default_rng(seed)
            train = x[np.sort(rng.choice(n, 256 * lists, replace=False))]
        say(f"training {lists} lists on {train.shape[0]} vectors")
        ivf.train(train)
        index = ivf
    else:
        raise SchemaError(f"build_index: kind must be 'flat', 'ivf' or 'hnsw', got {kind!r}")

    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        index.add_with_ids(x[lo:hi], item_ids[lo:hi])
        if n > _CHUNK:
            say(f"added {hi}/{n}")
    say("done")
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        faiss.write_index(index, str(target))
        say(f"written to {target}")
    return index
