"""Generated click data shaped like the Transformers4Rec example's (for tests, docs, benchmarks)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["make_clicks"]


def make_clicks(n_sessions: int = 300, seed: int = 0, n_items: int = 400) -> Any:
    """Raw interactions, cleaned like section 1 of the example (consecutive repeats removed,
    ``itemid_ts_first`` merged in). Timestamps are int seconds over ~30 days."""
    import pandas as pd  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 25, n_sessions)
    session = np.repeat(np.arange(n_sessions, dtype=np.int64) * 7 + 1000, lengths)
    start = np.repeat(1_600_000_000 + rng.integers(0, 30 * 86400, n_sessions), lengths)
    within = np.concatenate([np.sort(rng.integers(0, 1800, n)) for n in lengths])
    item = (rng.zipf(1.3, lengths.sum()) % n_items).astype(np.int64) + 10
    df = pd.DataFrame({"session_id": session, "timestamp": (start + within).astype(np.int64), "item_id": item})
    df["category"] = (df["item_id"] % 17 + 3).astype(np.int64)
    df = df.sort_values(["session_id", "timestamp"]).reset_index(drop=True)
    past_ids = df["item_id"].shift(1)
    past_sess = df["session_id"].shift(1)
    df = df[~((df["session_id"] == past_sess) & (df["item_id"] == past_ids))].reset_index(drop=True)
    first = df.groupby("item_id").agg({"timestamp": "min"}).reset_index().rename(columns={"timestamp": "itemid_ts_first"})
    return df.merge(first, on=["item_id"], how="left")
