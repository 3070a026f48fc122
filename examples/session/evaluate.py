"""Next-item quality over full rankings: Recall@k and NDCG@k, and the two cheap baselines.

Each evaluation session is split into its prefix (all clicks but the last) and its target
(the last click), as Transformers4Rec's evaluation does. Every item is ranked; the items of
the prefix are excluded from the ranking (MovieLens has no repeated ratings, so a target is
never in its own prefix).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["metrics", "popularity_scorer", "transition_scorer", "evaluate"]


def metrics(scores: np.ndarray, prefixes: Sequence[np.ndarray], targets: np.ndarray, k: int = 20) -> dict[str, float]:
    """Recall@k and NDCG@k of ``scores`` (sessions × items) with each prefix's items excluded."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    for row, prefix in enumerate(prefixes):
        scores[row, prefix] = -np.inf
    target_score = scores[np.arange(len(targets)), targets]
    rank = (scores > target_score[:, None]).sum(axis=1)  # 0 = first
    hit = rank < k
    return {
        f"recall@{k}": float(hit.mean()),
        f"ndcg@{k}": float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean()),
    }


def popularity_scorer(train: Sequence[np.ndarray], n_items: int) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """Scores every session by the items' click counts in the training sessions."""
    counts = np.bincount(np.concatenate(list(train)), minlength=n_items).astype(np.float64)

    def score(prefixes: Sequence[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(counts, (len(prefixes), n_items))

    return score


def transition_scorer(train: Sequence[np.ndarray], n_items: int) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """Scores by how often each item followed the session's last item in training (ties broken
    by popularity): the strongest cheap baseline on MovieLens."""
    counts = np.bincount(np.concatenate(list(train)), minlength=n_items).astype(np.float64)
    pop = counts / (counts.max() + 1.0)  # < 1: only breaks ties between equal transition counts
    table: dict[int, np.ndarray] = {}
    for seq in train:
        for a, b in zip(seq[:-1], seq[1:]):
            row = table.setdefault(int(a), np.zeros(n_items))
            row[b] += 1.0

    def score(prefixes: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(prefixes), n_items))
        for i, prefix in enumerate(prefixes):
            out[i] = table.get(int(prefix[-1]), 0.0) + pop
        return out

    return score


def evaluate(
    scorer: Callable[[Sequence[np.ndarray]], np.ndarray], sessions: Sequence[np.ndarray], k: int = 20
) -> dict[str, float]:
    """``scorer(prefixes) -> scores`` evaluated on ``sessions`` (each ≥ 2 clicks)."""
    prefixes = [np.asarray(s[:-1]) for s in sessions]
    targets = np.array([s[-1] for s in sessions])
    return metrics(scorer(prefixes), prefixes, targets, k=k)
