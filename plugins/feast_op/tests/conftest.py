"""Real Feast feature repositories (sqlite and Redis online stores) built once per session."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

N_USERS = 20
N_ITEMS = 50


def user_frame() -> pd.DataFrame:
    """Users 1..20: age int32, score float32, name str, genres list<int64> (user 1: empty)."""
    ids = np.arange(1, N_USERS + 1, dtype=np.int64)
    return pd.DataFrame(
        {
            "user_id": ids,
            "age": (20 + ids).astype(np.int32),
            "score": (ids / 10).astype(np.float32),
            "name": [f"user{i}" for i in ids],
            "genres": [list(range(int(i) % 4)) for i in ids],
        }
    )


def item_frame() -> pd.DataFrame:
    """Items 1..50: category int64, price float64, brand str, popular bool."""
    ids = np.arange(1, N_ITEMS + 1, dtype=np.int64)
    return pd.DataFrame(
        {
            "item_id": ids,
            "item_category": ids % 7,
            "item_price": ids * 1.5,
            "item_brand": [f"brand{i % 5}" for i in ids],
            "item_popular": ids % 3 == 0,
        }
    )


def build_repo(root: Path, project: str, online_store_yaml: str) -> Path:
    """Write parquet sources + feature_store.yaml, apply the definitions, materialize."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType  # noqa: PLC0415
    from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String  # noqa: PLC0415

    data = root / "data"
    data.mkdir(parents=True)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    users, items = user_frame(), item_frame()
    users["event_timestamp"] = now
    items["event_timestamp"] = now
    users.to_parquet(data / "users.parquet")
    items.to_parquet(data / "items.parquet")
    (root / "feature_store.yaml").write_text(
        f"project: {project}\nregistry: data/registry.db\nprovider: local\n"
        f"online_store:\n{online_store_yaml}\nentity_key_serialization_version: 3\n"
    )
    store = FeatureStore(repo_path=str(root))
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64)
    ttl = dt.timedelta(days=3650)
    user_view = FeatureView(
        name="user_features",
        entities=[user],
        ttl=ttl,
        schema=[
            Field(name="user_id", dtype=Int64),
            Field(name="age", dtype=Int32),
            Field(name="score", dtype=Float32),
            Field(name="name", dtype=String),
            Field(name="genres", dtype=Array(Int64)),
        ],
        source=FileSource(path=str(data / "users.parquet"), timestamp_field="event_timestamp"),
    )
    item_view = FeatureView(
        name="item_features",
        entities=[item],
        ttl=ttl,
        schema=[
            Field(name="item_id", dtype=Int64),
            Field(name="item_category", dtype=Int64),
            Field(name="item_price", dtype=Float64),
            Field(name="item_brand", dtype=String),
            Field(name="item_popular", dtype=Bool),
        ],
        source=FileSource(path=str(data / "items.parquet"), timestamp_field="event_timestamp"),
    )
    store.apply([user, item, user_view, item_view])
    start = now.to_pydatetime() - dt.timedelta(days=1)
    store.materialize(start, now.to_pydatetime() + dt.timedelta(seconds=1))
    return root


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def sqlite_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature repo with the sqlite online store (Feast's embedded default)."""
    root = tmp_path_factory.mktemp("feast_sqlite")
    return build_repo(root, "funnel_sqlite", "  type: sqlite\n  path: data/online.db")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real redis-server on a free loopback port, stopped at the end of the session."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server is missing: run tools/system-deps.sh"
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis  # noqa: PLC0415

        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_repo(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Path:
    """The same feature repo with the Redis online store."""
    root = tmp_path_factory.mktemp("feast_redis")
    return build_repo(root, "funnel_redis", f'  type: redis\n  connection_string: "{redis_server}"')
