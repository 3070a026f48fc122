"""The demo's Feast feature repository: ``user_features`` and ``item_features`` over parquet.

Written under the work directory, applied to a local registry and materialized into the
sqlite online store, exactly like a hand-made repository would be. ``QueryFeast`` only
needs the repository path to serve from it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["USER_VIEW", "ITEM_VIEW", "write_feature_repo"]

USER_VIEW = "user_features"
ITEM_VIEW = "item_features"


def write_feature_repo(root: Path, users: pd.DataFrame, items: pd.DataFrame, project: str = "movielens") -> Path:
    """Write parquet sources + ``feature_store.yaml``, ``apply`` the views and ``materialize``.

    ``users``: user_id, age, gender, occupation (int64) and seen_item_ids (list of int64).
    ``items``: item_id, year, genres (int64) and popularity (float32). Returns ``root``.
    """
    from funnel_feast import build_feature_repo  # noqa: PLC0415

    return build_feature_repo(root, {USER_VIEW: ("user_id", users), ITEM_VIEW: ("item_id", items)}, project=project)
