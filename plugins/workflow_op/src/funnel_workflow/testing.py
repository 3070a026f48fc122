"""Generated click data shaped like the Transformers4Rec example's (for tests, docs, benchmarks)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["make_clicks", "builtin_workflow"]


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


def builtin_workflow(clicks: Any) -> Any:
    """A session workflow of built-in ops only (no code: it loads as data, runs on arrays),
    fitted on ``clicks``."""
    import pandas as pd  # noqa: PLC0415

    import funnel_workflow as nvt  # noqa: PLC0415
    from funnel_workflow import ops  # noqa: PLC0415

    prices = pd.DataFrame({"item_id": np.sort(clicks["item_id"].unique())})
    prices["price"] = (prices["item_id"] % 13) * 0.5 + 1.0
    cats = ["item_id", "category"] >> ops.Categorify(freq_threshold=2, num_buckets=3)
    hashed = ["session_id"] >> ops.HashBucket(1000) >> ops.Rename(postfix="_hash")
    ts = ["timestamp"] >> ops.LogOp() >> ops.Normalize() >> ops.Rename(postfix="_norm")
    age = ["itemid_ts_first"] >> ops.NormalizeMinMax() >> ops.Clip(0.1, 0.9) >> ops.Rename(postfix="_mm")
    bucket = ["category"] >> ops.Bucketize([5, 10]) >> ops.Rename(postfix="_bucket")
    price = (["item_id"] >> ops.JoinExternal(prices, on="item_id"))["price"] >> ops.FillMissing(0.0)
    features = ["session_id", "timestamp"] + cats + hashed + ts + age + bucket + price
    grouped = features >> ops.Groupby(
        "session_id", sort_cols=["timestamp"], name_sep="-",
        aggs={"item_id": ["list", "count"], "category": ["list", "first"], "timestamp_norm": ["mean", "min", "max"],
              "price": ["sum", "last", "list"], "itemid_ts_first_mm": ["list"], "category_bucket": ["last"],
              "session_id_hash": ["first"]})
    lists = grouped["item_id-list", "price-list"] >> ops.ListSlice(-4, 1_000_000) >> ops.Rename(postfix="_tail")
    padded = grouped["category-list"] >> ops.ListSlice(0, 3, pad=True, pad_value=0)
    out = grouped["session_id", "item_id-count", "category-first", "timestamp_norm-mean", "timestamp_norm-min",
                  "timestamp_norm-max", "price-sum", "price-last", "itemid_ts_first_mm-list", "category_bucket-last",
                  "session_id_hash-first"] + lists + padded
    workflow = nvt.Workflow(out >> ops.AddTags(["feature"]))
    return workflow.fit(nvt.Dataset(clicks))
