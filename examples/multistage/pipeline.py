"""The served graph (the Merlin multi-stage notebook's shape plus a seen-items filter) and its evaluation.

    user_id ─ QueryFeast(user_features) ─ KnownIds(user_id) ─ PredictTensorflow(query tower)
            ─ QueryFaiss(top-100) ─ FilterCandidates(seen_item_ids) ─ QueryFeast(item_features,
            prefix "item") ─ UnrollFeatures(item_id, user features) ─ PredictTensorflow(ranking)
            ─ SoftmaxSampling(top-10) ─ Fallback(popular items for unknown users)

Unknown user ids (not in the feature store: ``-1``, ``0``, ``999999``) never reach the query
tower's embedding table: ``KnownIds`` masks them with a padding id and flags the row, and
``Fallback`` answers such rows with the most popular items, ``fallback=True`` in the output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from funnel import ColumnSchema, Ensemble, Node, Schema, Tags
from funnel.ops import Fallback, FilterCandidates, KnownIds, UnrollFeatures
from funnel.table import Ragged, Table, to_numpy

from examples.multistage.features import ITEM_VIEW, USER_VIEW
from examples.multistage.models import USER_FEATURES
from examples.multistage.prepare import RANKER_COLUMNS, Artifacts, Split

__all__ = [
    "REQUEST_SCHEMA",
    "DEFAULT_TEMPERATURE",
    "Stages",
    "build_stages",
    "build_ensemble",
    "Quality",
    "evaluate",
    "recall_at",
    "popularity_ranking",
]

#: what a request carries: one user id per row
REQUEST_SCHEMA = Schema([ColumnSchema("user_id", "int64", tags=[Tags.USER_ID, Tags.USER])])
#: SoftmaxSampling textbook temperature (p ∝ exp(logit / T)) over the ranker's listwise
#: logits: low enough that the sampled top-10 keeps the ranker's quality, high enough to
#: vary the tail (Merlin's ``temperature`` would be 1 / 0.1 = 10)
DEFAULT_TEMPERATURE = 0.1
SEEN_COLUMN = "seen_item_ids"
#: output column: True for rows answered with the popular-items fallback (unknown user ids)
FALLBACK_COLUMN = "fallback"
#: the user embedding row unknown ids are masked with (MovieLens ids start at 1: 0 is padding)
PADDING_USER_ID = 0


@dataclass
class Stages:
    """The graph's nodes, one per stage (any of them can be an Ensemble's output)."""

    user_features: Node
    query: Node
    retrieval: Node
    filtered: Node
    item_features: Node
    combined: Node
    ranking: Node
    ordering: Node
    #: ``ordering`` with the popular-items answer for unknown users, flagged in ``fallback``
    answer: Node


def build_stages(
    art: Artifacts,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int | None = 0,
    retrieval_k: int = 100,
    topk: int = 10,
    filter_seen: bool = True,
    item_cache_size: int = 0,
) -> Stages:
    """Wire the operators over the prepared artifacts (models are loaded here)."""
    from funnel_faiss import QueryFaiss  # noqa: PLC0415
    from funnel_feast import QueryFeast  # noqa: PLC0415
    from funnel_sampling import SoftmaxSampling  # noqa: PLC0415
    from funnel_tf import PredictTensorflow  # noqa: PLC0415

    looked_up = ["user_id"] >> QueryFeast.from_feature_view(
        art.feature_repo, USER_VIEW, column="user_id", include_id=True, include_found=True
    )
    # the feature store is the user vocabulary: an id it does not know is masked (never an
    # embedding lookup with -1 or 999999) and its row is answered by the fallback below
    user_features = looked_up >> KnownIds(
        "user_id", found_col=f"{USER_VIEW}_found", fill=PADDING_USER_ID, flag_col="known_user"
    )
    user_cols = user_features[list(USER_FEATURES)]
    query = user_cols >> PredictTensorflow(art.query_tower)
    retrieval = query >> QueryFaiss(art.index, topk=retrieval_k)
    filtered = (
        retrieval >> FilterCandidates(user_features[SEEN_COLUMN], input_col="candidate_ids")
        if filter_seen
        else retrieval
    )
    item_features = filtered >> QueryFeast.from_feature_view(
        art.feature_repo,
        ITEM_VIEW,
        column="candidate_ids",
        output_prefix="item",
        include_id=True,
        include_found=False,
        cache_size=item_cache_size,
    )
    combined = item_features >> UnrollFeatures("item_id", user_cols)
    ranking = combined[list(RANKER_COLUMNS.values())] >> PredictTensorflow(art.ranker)
    ordering = combined["item_id"] >> SoftmaxSampling(
        relevance_col=ranking["relevance"], textbook_temperature=temperature, topk=topk, seed=seed
    )
    popular = popular_items(art, topk)
    answer = ordering >> Fallback(
        user_features["known_user"],
        {"ordered_ids": popular, "ordered_scores": [0.0] * topk, "ordered_lengths": topk},
        flag_output=FALLBACK_COLUMN,
    )
    return Stages(user_features, query, retrieval, filtered, item_features, combined, ranking, ordering, answer)


def popular_items(art: Artifacts, k: int) -> list[int]:
    """The ``k`` items with the highest popularity feature (the fallback answer)."""
    items = pd.read_parquet(art.feature_repo / "data" / f"{ITEM_VIEW}.parquet")
    order = items.sort_values("popularity", ascending=False, kind="stable").item_id.to_numpy()
    if order.size < k:
        raise ValueError(f"the item catalogue has {order.size} items, fewer than topk={k}")
    return [int(i) for i in order[:k]]


def build_ensemble(art: Artifacts, **kwargs) -> Ensemble:
    """The whole pipeline as an Ensemble: ``user_id`` in; ``ordered_ids``/``ordered_scores`` (B, topk),
    ``ordered_lengths`` and ``fallback`` (True: an unknown user, answered with popular items) out.

    Keyword arguments go to :func:`build_stages` (``temperature``, ``seed``, ``retrieval_k``,
    ``topk``, ``filter_seen``, ``item_cache_size``).
    """
    return Ensemble(build_stages(art, **kwargs).answer, REQUEST_SCHEMA)


# -- evaluation ---------------------------------------------------------------------------------
def recall_at(recommended: Iterable[Iterable[int]], relevant: Iterable[set[int]]) -> float:
    """Mean over users of |recommended ∩ relevant| / |relevant| (users with no relevant items skipped)."""
    values = [len(rel.intersection(rec)) / len(rel) for rec, rel in zip(recommended, relevant, strict=False) if rel]
    return float(np.mean(values)) if values else float("nan")


def popularity_ranking(train: pd.DataFrame) -> np.ndarray:
    """Item ids by number of training interactions, most popular first."""
    return train.item_id.value_counts().index.to_numpy()


def _popular_top(order: np.ndarray, seen: set[int], k: int) -> list[int]:
    out = []
    for i in order:
        if int(i) not in seen:
            out.append(int(i))
            if len(out) == k:
                break
    return out


@dataclass
class Quality:
    """Recall on the held-out (later) interactions of every test user."""

    users: int
    retrieval_recall_100: float
    popularity_recall_100: float
    retrieval_order_recall_10: float
    pipeline_recall_10: float
    popularity_recall_10: float

    def report(self) -> str:
        """Human-readable lines."""
        return (
            f"  {self.users} users, held-out = each user's last 20% of interactions\n"
            f"  retrieval  recall@100: two-tower {self.retrieval_recall_100:.3f}  vs popularity "
            f"{self.popularity_recall_100:.3f}\n"
            f"  top-10     recall@10 : pipeline  {self.pipeline_recall_10:.3f}  vs popularity "
            f"{self.popularity_recall_10:.3f}  (retrieval order alone {self.retrieval_order_recall_10:.3f}; "
            "already-seen movies removed in all three)"
        )


def evaluate(
    art: Artifacts,
    split: Split,
    batch_size: int = 256,
    log: Callable[[str], None] = print,
    **kwargs,
) -> Quality:
    """Run the in-process pipeline for every test user (batched) and compare with popularity.

    ``kwargs`` go to :func:`build_stages`. Retrieval recall@100 is measured on the FAISS
    output before the seen-items filter; popularity@100 likewise includes seen items
    (held-out items are never among them: MovieLens has one interaction per user and item).
    """
    stages = build_stages(art, **kwargs)
    ens = Ensemble(stages.ordering + stages.retrieval, REQUEST_SCHEMA)
    relevant = split.test.groupby("user_id").item_id.apply(lambda s: set(s.tolist()))
    seen = split.train.groupby("user_id").item_id.apply(lambda s: set(s.tolist()))
    users = relevant.index.to_numpy(dtype=np.int64)
    top10: list[list[int]] = []
    top100: list[list[int]] = []
    for start in range(0, users.size, batch_size):
        batch = users[start : start + batch_size]
        out = ens.transform(Table({"user_id": batch}))
        top10 += [[int(i) for i in row if i >= 0] for row in to_numpy(out["ordered_ids"])]
        cand = out["candidate_ids"]
        cand = cand if isinstance(cand, Ragged) else Ragged.from_dense(cand)
        top100 += cand.to_lists()
        log(f"    evaluated {min(start + batch_size, users.size)}/{users.size} users")
    rel = [relevant[u] for u in users]
    user_seen = [seen.get(u, set()) for u in users]
    pop = popularity_ranking(split.train)
    retrieval_order10 = [[i for i in c if i not in s][:10] for c, s in zip(top100, user_seen, strict=False)]
    return Quality(
        users=int(users.size),
        retrieval_recall_100=recall_at(top100, rel),
        popularity_recall_100=recall_at([pop[:100].tolist()] * users.size, rel),
        retrieval_order_recall_10=recall_at(retrieval_order10, rel),
        pipeline_recall_10=recall_at(top10, rel),
        popularity_recall_10=recall_at([_popular_top(pop, s, 10) for s in user_seen], rel),
    )
