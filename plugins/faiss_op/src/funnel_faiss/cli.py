"""``funnel faiss ...``: build a FAISS index from a .npy file, and describe an index file.

FAISS and numpy are imported inside the commands, so ``funnel --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["faiss_group"]


def _load_npy(path: str, what: str) -> Any:
    """``np.load`` of a .npy file; a missing or unreadable file is a one-line ClickException."""
    import numpy as np  # noqa: PLC0415

    if not Path(path).is_file():
        raise click.ClickException(f"{what} file {path} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{what} file {path} is not a readable .npy array: {exc}") from exc


@click.group("faiss")
def faiss_group() -> None:
    """FAISS indexes for QueryFaiss: build one from embeddings, describe one."""


@faiss_group.command("build")
@click.argument("embeddings", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Index file to write (parent directories are created).")
@click.option("--ids", type=click.Path(dir_okay=False), default=None,
              help="A .npy file of N integer item ids, the ids searches return. Default: 0..N-1.")
@click.option("--kind", type=click.Choice(["flat", "ivf", "hnsw"]), default="flat", show_default=True,
              help="flat: exact; ivf: IndexIVFFlat; hnsw: IndexHNSWFlat (build_index's defaults).")
@click.option("--metric", type=click.Choice(["ip", "l2"]), default="ip", show_default=True,
              help="ip: inner product (normalize the vectors for cosine); l2: squared Euclidean.")
def build_cmd(embeddings: str, output: str, ids: str | None, kind: str, metric: str) -> None:
    """Build an index over EMBEDDINGS, a .npy file of N item vectors (N, d).

    Calls funnel_faiss.build_index; the written file is what QueryFaiss(path) reads (and
    plain faiss.read_index).
    """
    from funnel_faiss.build import build_index  # noqa: PLC0415

    x = _load_npy(embeddings, "embeddings")
    item_ids = _load_npy(ids, "ids") if ids is not None else None
    index = build_index(x, item_ids, output, kind=kind, metric=metric)  # type: ignore[arg-type]
    click.echo(f"built {kind} index ({metric}): n={index.ntotal} d={index.d} -> {output}")


def describe_index(path: str) -> dict[str, Any]:
    """ntotal, dimension, metric, type chain and id mapping of the FAISS index file at ``path``."""
    import faiss  # noqa: PLC0415

    from funnel_faiss.query import read_index  # noqa: PLC0415

    loaded = read_index(path)  # keep it referenced: downcast views do not own the index
    index = faiss.downcast_index(loaded)
    chain = [type(index).__name__]
    ids_mapped = isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2))
    inner = index
    while isinstance(inner, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexPreTransform)):
        inner = faiss.downcast_index(inner.index)
        chain.append(type(inner).__name__)
    ivf = faiss.try_extract_index_ivf(index)
    info: dict[str, Any] = {
        "path": str(path),
        "type": " > ".join(chain),
        "ntotal": int(index.ntotal),
        "dimension": int(index.d),
        "metric": {faiss.METRIC_INNER_PRODUCT: "ip", faiss.METRIC_L2: "l2"}.get(index.metric_type,
                                                                               str(index.metric_type)),
        # IVF lists store the ids they were given; other indexes return positions unless wrapped
        "ids_mapped": ids_mapped or ivf is not None,
    }
    if ivf is not None:
        info["nlist"], info["nprobe"] = int(ivf.nlist), int(ivf.nprobe)
    if hasattr(inner, "hnsw"):
        info["ef_search"] = int(inner.hnsw.efSearch)
    return info


@faiss_group.command("info")
@click.argument("index", type=click.Path(dir_okay=False))
def info_cmd(index: str) -> None:
    """Describe the FAISS index file INDEX: ntotal, dimension, metric, type, id mapping."""
    info = describe_index(index)
    mapped = "yes" if info["ids_mapped"] else "no (searches return positions 0..ntotal-1)"
    lines = [
        f"path:       {info['path']}",
        f"type:       {info['type']}",
        f"ntotal:     {info['ntotal']}",
        f"dimension:  {info['dimension']}",
        f"metric:     {info['metric']}",
        f"ids mapped: {mapped}",
    ]
    lines += [f"{key + ':':<11} {info[key]}" for key in ("nlist", "nprobe", "ef_search") if key in info]
    click.echo("\n".join(lines))
