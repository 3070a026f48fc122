"""Real Feast feature repositories (sqlite and Redis online stores) built once per session."""

from __future__ import annotations

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
    """A real repository (parquet sources, apply, materialize) through the plugin's own helper."""
    from funnel_feast import build_feature_repo  # noqa: PLC0415

    return build_feature_repo(
        root,
        {"user_features": ("user_id", user_frame()), "item_features": ("item_id", item_frame())},
        project=project,
        online_store=online_store_yaml,
    )


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
