"""The optional in-process feature cache: staleness within the TTL, expiry, size bound, misses."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pandas as pd
import pytest
from funnel import Ragged, Table
from funnel_feast import QueryFeast
from funnel_feast.cache import FeatureCache


def items(ids) -> Table:
    return Table({"candidate_ids": Ragged.from_lists([ids], dtype="int64")})


def test_cache_serves_stale_rows_until_ttl(sqlite_repo, tmp_path):
    repo = shutil.copytree(sqlite_repo, tmp_path / "repo")
    cached = QueryFeast.from_feature_view(
        repo, "item_features", "candidate_ids", cache_size=100, cache_ttl=0.5
    )
    fresh = QueryFeast.from_feature_view(repo, "item_features", "candidate_ids")
    assert cached.transform(items([1, 2]))["item_category"].values.tolist() == [1, 2]
    update = pd.DataFrame(
        {
            "item_id": [1],
            "item_category": [99],
            "item_price": [1.5],
            "item_brand": ["brand1"],
            "item_popular": [False],
            "event_timestamp": [pd.Timestamp.now(tz="UTC")],
        }
    )
    fresh.store.write_to_online_store("item_features", update)
    assert fresh.transform(items([1, 2]))["item_category"].values.tolist() == [99, 2]
    t0 = time.monotonic()
    stale = cached.transform(items([2, 1]))["item_category"].values.tolist()
    if time.monotonic() - t0 < 0.4:  # only meaningful while the entries are still alive
        assert stale == [2, 1]
        assert cached._cache is not None and cached._cache.hits == 2
    time.sleep(0.6)
    assert cached.transform(items([1, 2]))["item_category"].values.tolist() == [99, 2]


def test_cache_off_by_default_and_bounded(sqlite_repo):
    op = QueryFeast.from_feature_view(sqlite_repo, "item_features", "candidate_ids")
    assert op._cache is None and op.to_config()["cache_size"] == 0
    op = QueryFeast.from_feature_view(sqlite_repo, "item_features", "candidate_ids", cache_size=3)
    plain = QueryFeast.from_feature_view(sqlite_repo, "item_features", "candidate_ids")
    ids = [5, 1, 5, 9, 2, 30, 999]
    out = op.transform(items(ids))
    assert out == plain.transform(items(ids))
    assert op._cache is not None and len(op._cache) == 3
    again = op.transform(items(ids))  # a second pass mixes hits and misses
    assert again == out


def test_missing_ids_are_cached_as_missing(sqlite_repo):
    op = QueryFeast.from_feature_view(sqlite_repo, "item_features", "candidate_ids", cache_size=10)
    for _ in range(2):
        out = op.transform(items([999, 3]))
        np.testing.assert_array_equal(out["item_features_found"].values, [False, True])
        assert out["item_brand"].values.tolist() == ["", "brand3"]
    assert op._cache is not None and (op._cache.hits, op._cache.misses) == (2, 2)


def test_feature_cache_unit():
    now = [0.0]
    cache = FeatureCache(2, ttl=10, clock=lambda: now[0])
    cache.put_many([("a", (1,)), ("b", (2,)), ("c", (3,))])
    assert cache.get_many(["a", "b", "c"]) == ({"b": (2,), "c": (3,)}, ["a"])
    now[0] = 11.0
    assert cache.get_many(["b"]) == ({}, ["b"])
    with pytest.raises(ValueError):
        FeatureCache(0, ttl=1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"cache_size": 2.7}, "cache_size must be a whole number of ids >= 0"),  # was truncated to 2
        ({"cache_size": -5}, "cache_size must be a whole number of ids >= 0"),  # was silently no cache
        ({"cache_size": True}, "cache_size must be a whole number"),
        ({"cache_size": 10, "cache_ttl": 0}, r"QueryFeast\(item_features\): cache_ttl must be a positive"),
        ({"cache_size": 10, "cache_ttl": float("inf")}, "cache_ttl must be a positive, finite"),
    ],
)
def test_cache_settings_are_checked(sqlite_repo, kwargs, match):
    from funnel.errors import SchemaError  # noqa: PLC0415

    with pytest.raises(SchemaError, match=match):
        QueryFeast.from_feature_view(sqlite_repo, "item_features", "candidate_ids", **kwargs)
    assert QueryFeast.from_feature_view(sqlite_repo, "item_features", "candidate_ids", cache_size=np.int64(8)).cache_size == 8
