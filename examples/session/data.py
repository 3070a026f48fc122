"""MovieLens-100K as click sessions, cleaned the way the Transformers4Rec example cleans yoochoose.

Each user's ratings, sorted by time, are cut into sessions at gaps of more than 30 minutes;
``category`` is the movie's first genre. Then the example's own cleaning: consecutive repeats
within a session are dropped and ``itemid_ts_first`` (the item's first timestamp) is merged in.
The data set is read from the installed ``recbole`` wheel (see examples/multistage/data.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from examples.multistage.data import GENRES, load_movielens

__all__ = ["SESSION_GAP_S", "load_interactions", "first_genre", "titles"]

#: a new session starts after a gap longer than this
SESSION_GAP_S = 30 * 60


def first_genre(genre_mask: pd.Series) -> pd.Series:
    """The first genre of each movie (lowest set bit of the genre mask), as a 1-based code."""
    mask = genre_mask.to_numpy(np.int64)
    lowest = mask & -mask
    code = np.where(mask > 0, np.log2(np.maximum(lowest, 1)).astype(np.int64) + 1, len(GENRES))
    return pd.Series(code, index=genre_mask.index)


def load_interactions(max_users: int | None = None) -> pd.DataFrame:
    """Raw click rows ``session_id, user_id, timestamp, item_id, category, itemid_ts_first``.

    ``max_users`` keeps the first users (by id) for a reduced, fast slice (tests).
    """
    ml = load_movielens()
    inter = ml.interactions
    if max_users is not None:
        inter = inter[inter.user_id <= max_users]
    inter = inter.sort_values(["user_id", "timestamp", "item_id"], kind="stable").reset_index(drop=True)
    gap = inter.timestamp.diff().fillna(SESSION_GAP_S + 1) > SESSION_GAP_S
    new_user = inter.user_id.ne(inter.user_id.shift())
    inter["session_id"] = (gap | new_user).cumsum().astype(np.int64)
    cats = first_genre(ml.items.set_index("item_id").genres)
    inter["category"] = inter.item_id.map(cats).astype(np.int64)
    df = inter[["session_id", "user_id", "timestamp", "item_id", "category"]]
    # the example's cleaning: sort, drop consecutive repeats within a session
    df = df.sort_values(["session_id", "timestamp"], kind="stable")
    past_ids = df.item_id.shift(1)
    past_sessions = df.session_id.shift(1)
    df = df[~((df.session_id == past_sessions) & (df.item_id == past_ids))]
    first_ts = df.groupby("item_id").agg({"timestamp": "min"}).reset_index().rename(
        columns={"timestamp": "itemid_ts_first"}
    )
    return df.merge(first_ts, on=["item_id"], how="left").reset_index(drop=True)


def titles() -> dict[int, str]:
    """Raw movie id → title."""
    items = load_movielens().items
    return dict(zip(items.item_id.tolist(), items.title.tolist()))
