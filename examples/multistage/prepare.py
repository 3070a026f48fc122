"""Build (or reuse) everything the served pipeline needs: data split, models, features, index.

``prepare(workdir)`` returns :class:`Artifacts`, the paths and small tables the graph and
the evaluation need. Artifacts are cached in ``workdir`` (``artifacts.json`` marks a
complete build); ``rebuild=True`` starts over.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from examples.multistage.data import MovieLens, load_movielens, time_split
from examples.multistage.features import write_feature_repo
from examples.multistage.models import (
    ITEM_FEATURES,
    USER_FEATURES,
    TowerConfig,
    serving_query_tower,
    serving_ranker,
    train_ranker,
    train_two_tower,
)

__all__ = ["Artifacts", "Split", "prepare", "load_split", "RANKER_COLUMNS", "FORMAT_VERSION"]

FORMAT_VERSION = 1
#: served column name of every ranking-model input (after the item lookup and the unroll)
RANKER_COLUMNS = {
    **{f"user:{f}": f for f in USER_FEATURES},
    "item:item_id": "item_id",
    "item:year": "item_year",
    "item:genres": "item_genres",
    "item:popularity": "item_popularity",
}


@dataclass
class Artifacts:
    """Where the prepared pieces live (all under ``workdir``) and how they were built."""

    workdir: Path
    feature_repo: Path
    query_tower: Path
    ranker: Path
    index: Path
    titles: Path
    num_users: int | None = None
    num_items: int | None = None
    epochs: int = 8
    stats: dict = field(default_factory=dict)

    def to_json(self) -> str:
        """JSON of the fields (paths relative to ``workdir``)."""
        data = asdict(self)
        for k, v in data.items():
            if isinstance(v, Path):
                data[k] = str(v.relative_to(self.workdir)) if k != "workdir" else "."
        data["format"] = FORMAT_VERSION
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, workdir: Path, text: str) -> Artifacts:
        """Read :meth:`to_json` output back, resolving paths against ``workdir``."""
        data = json.loads(text)
        data.pop("format", None)
        data["workdir"] = workdir
        for k in ("feature_repo", "query_tower", "ranker", "index", "titles"):
            data[k] = workdir / data[k]
        return cls(**data)

    def title_map(self) -> dict[int, str]:
        """item id → movie title (client side)."""
        df = pd.read_parquet(self.titles)
        return dict(zip(df.item_id.tolist(), df.title.tolist(), strict=False))


@dataclass
class Split:
    """The data set and its per-user time split (train = features/models, test = evaluation)."""

    data: MovieLens
    train: pd.DataFrame
    test: pd.DataFrame


def load_split(num_users: int | None = None, num_items: int | None = None) -> Split:
    """MovieLens-100K (optionally reduced to the most active users / popular items), split by time."""
    ml = load_movielens()
    if num_users is not None or num_items is not None:
        ml = ml.subset(num_users or ml.users.shape[0], num_items or ml.items.shape[0])
    train, test = time_split(ml.interactions)
    return Split(ml, train, test)


def _by_id(frame: pd.DataFrame, key: str, cols: tuple[str, ...], size: int) -> dict[str, np.ndarray]:
    """Feature arrays indexed by id (row ``i`` = id ``i``; absent ids hold 0)."""
    out = {}
    for c in cols:
        arr = np.zeros(size, dtype=frame[c].dtype)
        arr[frame[key].to_numpy()] = frame[c].to_numpy()
        out[c] = arr
    return out


def _popularity(train: pd.DataFrame, size: int) -> np.ndarray:
    """log(1 + interactions) scaled to [0, 1]: the ranker's item popularity feature."""
    counts = np.bincount(train.item_id.to_numpy(), minlength=size).astype(np.float64)
    return (np.log1p(counts) / np.log1p(max(counts.max(), 1.0))).astype(np.float32)


def _ranker_examples(
    cfg: TowerConfig,
    split_users: dict[str, np.ndarray],
    split_items: dict[str, np.ndarray],
    item_exists: np.ndarray,
    earlier: pd.DataFrame,
    later: pd.DataFrame,
    log: Callable[[str], None],
    topk: int = 100,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Candidate rows as the served pipeline makes them, labelled by what users watched next.

    Towers trained on ``earlier`` retrieve ``topk`` items per user, the user's ``earlier``
    items are removed, and a candidate is positive when it is in the user's ``later`` items.
    """
    towers = train_two_tower(cfg, split_users, split_items, earlier.user_id.to_numpy(), earlier.item_id.to_numpy(), log)
    users = np.unique(later.user_id.to_numpy())
    q = towers.user_embeddings({f: a[users] for f, a in split_users.items()})
    v = towers.item_embeddings(split_items)
    scores = (q @ v.T) / cfg.temperature
    scores[:, ~item_exists] = -np.inf
    row_of = {u: r for r, u in enumerate(users)}
    seen_rows = earlier.user_id.map(row_of)
    keep = seen_rows.notna().to_numpy()
    scores[seen_rows[keep].astype(int).to_numpy(), earlier.item_id.to_numpy()[keep]] = -np.inf
    k = min(topk, int(item_exists.sum()) - 1)
    top = np.argpartition(-scores, k, axis=1)[:, :k]  # (users, k)
    s = np.take_along_axis(scores, top, axis=1)
    valid = np.isfinite(s)
    s = np.where(valid, s, 0.0)
    later_rows = later.user_id.map(row_of).to_numpy()
    watched = np.zeros(scores.shape, dtype=bool)
    watched[later_rows, later.item_id.to_numpy()] = True
    labels = np.take_along_axis(watched, top, axis=1) & valid
    pop = _popularity(earlier, split_items["item_id"].size)
    uid = np.repeat(users[:, None], k, axis=1)
    feats = {
        "score": s.astype(np.float32),
        "popularity": pop[top],
        "age": split_users["age"][uid],
        "gender": split_users["gender"][uid],
        "occupation": split_users["occupation"][uid],
        "year": split_items["year"][top],
        "genres": split_items["genres"][top],
    }
    log(f"    ranker examples: {k} candidates for each of {users.size} users, {labels[valid].mean():.1%} positive")
    return feats, labels, valid


def prepare(
    workdir: str | Path,
    rebuild: bool = False,
    num_users: int | None = None,
    num_items: int | None = None,
    epochs: int = 8,
    log: Callable[[str], None] = print,
) -> Artifacts:
    """Train the models and write the feature repository and the FAISS index under ``workdir``.

    Reuses a complete earlier build with the same settings unless ``rebuild``.
    ``num_users``/``num_items`` reduce the data set (tests); ``epochs`` sets two-tower training.
    """
    workdir = Path(workdir).resolve()
    marker = workdir / "artifacts.json"
    if marker.is_file() and not rebuild and json.loads(marker.read_text()).get("format") == FORMAT_VERSION:
        art = Artifacts.from_json(workdir, marker.read_text())
        if (art.num_users, art.num_items, art.epochs) == (num_users, num_items, epochs):
            log(f"[prepare] reusing models, features and index in {workdir} (--rebuild to start over)")
            return art
    if workdir.exists():
        for sub in ("models", "feature_repo", "index", "data"):
            shutil.rmtree(workdir / sub, ignore_errors=True)
        marker.unlink(missing_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    art = Artifacts(
        workdir=workdir,
        feature_repo=workdir / "feature_repo",
        query_tower=workdir / "models" / "query_tower",
        ranker=workdir / "models" / "ranker",
        index=workdir / "index" / "items.faiss",
        titles=workdir / "data" / "titles.parquet",
        num_users=num_users,
        num_items=num_items,
        epochs=epochs,
    )
    t0 = time.perf_counter()
    split = load_split(num_users, num_items)
    ml, train = split.data, split.train
    log(
        f"[prepare] MovieLens-100K: {len(ml.users)} users, {len(ml.items)} items, "
        f"{len(train)} train / {len(split.test)} test interactions (last 20% of each user's, by time)"
    )
    users = _by_id(ml.users, "user_id", USER_FEATURES, ml.num_users)
    items = _by_id(ml.items, "item_id", ITEM_FEATURES, ml.num_items)
    item_exists = np.zeros(ml.num_items, dtype=bool)
    item_exists[ml.items.item_id.to_numpy()] = True
    cfg = TowerConfig(num_users=ml.num_users, num_items=ml.num_items, epochs=epochs)

    log("[prepare] ranker training data: two-tower on the earlier 80% of train, labels from the rest")
    earlier, later = time_split(train)
    feats, labels, valid = _ranker_examples(cfg, users, items, item_exists, earlier, later, log)
    head = train_ranker(cfg, feats, labels, valid, log=log)

    log("[prepare] two-tower retrieval model on all training interactions (in-batch softmax, logQ-corrected)")
    towers = train_two_tower(cfg, users, items, train.user_id.to_numpy(), train.item_id.to_numpy(), log)
    serving_query_tower(towers, {}).export(str(art.query_tower), verbose=False)
    serving_ranker(towers, head, RANKER_COLUMNS).export(str(art.ranker), verbose=False)
    log(f"[prepare] saved SavedModels: {art.query_tower}, {art.ranker}")

    from funnel_faiss import build_index  # noqa: PLC0415

    item_ids = ml.items.item_id.to_numpy()
    emb = towers.item_embeddings({f: a[item_ids] for f, a in items.items()})
    build_index(emb, item_ids, path=art.index, kind="flat", metric="ip")
    log(f"[prepare] FAISS index of {emb.shape[0]} item embeddings ({emb.shape[1]}-d): {art.index}")

    seen = train.groupby("user_id").item_id.apply(lambda s: np.sort(s.to_numpy()).astype(np.int64))
    user_frame = ml.users[["user_id", *USER_FEATURES[1:]]].copy()
    user_frame["seen_item_ids"] = [seen.get(u, np.zeros(0, np.int64)) for u in user_frame.user_id]
    item_frame = ml.items[["item_id", "year", "genres"]].copy()
    item_frame["popularity"] = _popularity(train, ml.num_items)[item_frame.item_id.to_numpy()]
    write_feature_repo(art.feature_repo, user_frame, item_frame)
    log(f"[prepare] Feast repository applied and materialized (sqlite online store): {art.feature_repo}")

    art.titles.parent.mkdir(parents=True, exist_ok=True)
    ml.items[["item_id", "title"]].to_parquet(art.titles, index=False)
    art.stats = {"build_seconds": round(time.perf_counter() - t0, 1), "ranker_positive_rate": float(labels[valid].mean())}
    marker.write_text(art.to_json())
    log(f"[prepare] done in {art.stats['build_seconds']} s")
    return art
