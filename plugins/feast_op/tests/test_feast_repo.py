"""build_feature_repo: the repositories every other test uses are built with it; its errors here."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from funnel.errors import SchemaError
from funnel_feast import QueryFeast, build_feature_repo


def test_types_are_inferred_and_served(sqlite_repo):
    op = QueryFeast.from_feature_view(sqlite_repo, "user_features", column="user_id")
    assert op.features == {"age": "int32", "score": "float32", "name": "str", "genres": "list<int64>"}


@pytest.mark.parametrize(
    "frame,match",
    [
        (pd.DataFrame({"uid": [1, 2], "x": [1, 2]}), "no join key column 'user_id'"),
        (pd.DataFrame({"user_id": [1, 2], "when": pd.to_datetime(["2024-01-01", "2024-01-02"])}), "column 'when'"),
        (pd.DataFrame({"user_id": [1.5, 2.5], "x": [1, 2]}), "join key 'user_id'"),
    ],
)
def test_unsupported_tables_are_refused_with_the_column(tmp_path, frame, match):
    with pytest.raises(SchemaError, match=match):
        build_feature_repo(tmp_path / "repo", {"v": ("user_id", frame)})


def _serve_ages(repo_or_op, ids):
    from funnel import ColumnSchema, Ensemble, Schema, Table  # noqa: PLC0415

    op = repo_or_op if isinstance(repo_or_op, QueryFeast) else QueryFeast.from_feature_view(repo_or_op, "v", "user_id")
    out = Ensemble(["user_id"] >> op, Schema([ColumnSchema("user_id", "int64")])).transform(
        Table({"user_id": np.array(ids, dtype=np.int64)}))
    return out["age"].tolist()


def test_a_relative_path_is_resolved_once(tmp_path, monkeypatch):
    # a relative root used to be joined twice: the parquet went to repo/data/, Feast read repo/repo/data/
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame({"user_id": np.array([1, 2], dtype=np.int64), "age": np.array([30, 41], dtype=np.int32)})
    repo = build_feature_repo("repo", {"v": ("user_id", frame)})
    assert repo == tmp_path / "repo" and repo.is_absolute()
    assert (tmp_path / "repo" / "data" / "v.parquet").is_file()
    assert not (tmp_path / "repo" / "repo").exists()
    assert _serve_ages(repo, [2, 1, 7]) == [41, 30, 0]


def test_the_repository_can_be_moved(tmp_path):
    from feast import FeatureStore  # noqa: PLC0415

    frame = pd.DataFrame({"user_id": np.array([1, 2], dtype=np.int64), "age": np.array([30, 41], dtype=np.int32)})
    moved = shutil.move(build_feature_repo(tmp_path / "first", {"v": ("user_id", frame)}), tmp_path / "second")
    store = FeatureStore(repo_path=str(moved))
    assert store.get_feature_view("v").batch_source.path == "data/v.parquet"
    # materializing again reads the sources from the new place
    store.materialize_incremental(pd.Timestamp.now(tz="UTC").to_pydatetime())
    assert _serve_ages(moved, [1, 2]) == [30, 41]


def test_a_relative_repository_path_survives_a_change_of_directory(tmp_path, monkeypatch):
    # the shared FeatureStore kept the relative path and looked for repo/data/ under the new cwd
    frame = pd.DataFrame({"user_id": np.array([1, 2], dtype=np.int64), "age": np.array([30, 41], dtype=np.int32)})
    build_feature_repo(tmp_path / "rel" / "repo", {"v": ("user_id", frame)})
    monkeypatch.chdir(tmp_path / "rel")
    op = QueryFeast.from_feature_view("repo", "v", "user_id")
    assert Path(op.store.repo_path) == tmp_path / "rel" / "repo"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert _serve_ages(op, [2, 1]) == [41, 30]
