"""The demo's Feast feature repository: ``user_features`` and ``item_features`` over parquet.

Written under the work directory, applied to a local registry and materialized into the
sqlite online store, exactly like a hand-made repository would be. ``QueryFeast`` only
needs the repository path to serve from it.
"""

from __future__ import annotations

import datetime as dt
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
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType  # noqa: PLC0415
    from feast.types import Array, Float32, Int64  # noqa: PLC0415

    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    users = users.assign(event_timestamp=now)
    items = items.assign(event_timestamp=now)
    users.to_parquet(data / "users.parquet", index=False)
    items.to_parquet(data / "items.parquet", index=False)
    (root / "feature_store.yaml").write_text(
        f"project: {project}\n"
        "registry: data/registry.db\n"
        "provider: local\n"
        "online_store:\n"
        "  type: sqlite\n"
        "  path: data/online_store.db\n"
        "entity_key_serialization_version: 3\n"
    )
    store = FeatureStore(repo_path=str(root))
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64)
    ttl = dt.timedelta(days=3650)
    user_view = FeatureView(
        name=USER_VIEW,
        entities=[user],
        ttl=ttl,
        schema=[
            Field(name="user_id", dtype=Int64),
            Field(name="age", dtype=Int64),
            Field(name="gender", dtype=Int64),
            Field(name="occupation", dtype=Int64),
            Field(name="seen_item_ids", dtype=Array(Int64)),
        ],
        source=FileSource(path=str(data / "users.parquet"), timestamp_field="event_timestamp"),
    )
    item_view = FeatureView(
        name=ITEM_VIEW,
        entities=[item],
        ttl=ttl,
        schema=[
            Field(name="item_id", dtype=Int64),
            Field(name="year", dtype=Int64),
            Field(name="genres", dtype=Int64),
            Field(name="popularity", dtype=Float32),
        ],
        source=FileSource(path=str(data / "items.parquet"), timestamp_field="event_timestamp"),
    )
    store.apply([user, item, user_view, item_view])
    start = now.to_pydatetime() - dt.timedelta(days=1)
    store.materialize(start, now.to_pydatetime() + dt.timedelta(seconds=1))
    return root
