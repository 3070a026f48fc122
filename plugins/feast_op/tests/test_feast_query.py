"""QueryFeast against real Feast repositories: batched lookups, candidate lists, naming, stores."""

from __future__ import annotations

import numpy as np
import pytest
from feast import FeatureStore
from funnel import ColumnSchema, Ensemble, Ragged, Schema, SchemaError, Table
from funnel.ops import UnrollFeatures
from funnel_feast import QueryFeast

USER_REQUEST = Schema([ColumnSchema("user_id", "int64")])
CANDIDATES_REQUEST = Schema([ColumnSchema("candidate_ids", "int64", dims=(None,))])


def user_op(repo, **kwargs) -> QueryFeast:
    return QueryFeast.from_feature_view(repo, "user_features", "user_id", **kwargs)


def item_op(repo, **kwargs) -> QueryFeast:
    kwargs.setdefault("output_prefix", "item")
    kwargs.setdefault("include_id", True)
    return QueryFeast.from_feature_view(repo, "item_features", "candidate_ids", **kwargs)


def check_users(out: Table, ids: list[int], prefix: str = "") -> None:
    """Expected values come from the generator in conftest (user i: age 20+i, ...)."""
    known = [1 <= i <= 20 for i in ids]
    np.testing.assert_array_equal(
        out[f"{prefix}age"], [20 + i if k else 0 for i, k in zip(ids, known, strict=True)]
    )
    assert out[f"{prefix}age"].dtype == np.int32
    np.testing.assert_allclose(
        out[f"{prefix}score"], [i / 10 if k else 0 for i, k in zip(ids, known, strict=True)], rtol=1e-6
    )
    assert out[f"{prefix}score"].dtype == np.float32
    assert out[f"{prefix}name"].dtype == object
    assert list(out[f"{prefix}name"]) == [f"user{i}" if k else "" for i, k in zip(ids, known, strict=True)]
    genres = out[f"{prefix}genres"]
    assert isinstance(genres, Ragged) and genres.values.dtype == np.int64
    assert genres.to_lists() == [list(range(i % 4)) if k else [] for i, k in zip(ids, known, strict=True)]


@pytest.mark.parametrize("store_kind", ["sqlite", "redis"])
def test_batched_user_lookup(request, store_kind):
    repo = request.getfixturevalue(f"{store_kind}_repo")
    ens = Ensemble(["user_id"] >> user_op(repo), USER_REQUEST)
    ids = [3, 1, 999, 3, 20, 4]
    out = ens.transform(Table({"user_id": np.array(ids, dtype=np.int64)}))
    assert out.column_names == ["age", "score", "name", "genres", "user_features_found"]
    assert out.num_rows == len(ids)
    check_users(out, ids)
    np.testing.assert_array_equal(out["user_features_found"], [True, True, False, True, True, True])


def test_schema_types_and_list_features(sqlite_repo):
    op = user_op(sqlite_repo, output_prefix="user", include_id=True)
    schema = op.compute_output_schema(USER_REQUEST)
    assert {c.name: c.dtype for c in schema} == {
        "user_id": "int64",
        "user_age": "int32",
        "user_score": "float32",
        "user_name": "str",
        "user_genres": "int64",
        "user_found": "bool",
    }
    assert schema["user_genres"].is_ragged and not schema["user_age"].is_list
    assert op.features["genres"] == "list<int64>"


def test_candidate_lists_are_aligned_with_input_offsets(request):
    repo = request.getfixturevalue("sqlite_repo")
    op = item_op(repo)
    ids = Ragged.from_lists([[1, 2, 3], [50, 999, 2], [], [7]], dtype="int64")
    out = op.transform(Table({"candidate_ids": ids}))
    assert out.column_names == [
        "item_id",
        "item_category",
        "item_price",
        "item_brand",
        "item_popular",
        "item_found",
    ]
    for name in out.column_names:
        assert isinstance(out[name], Ragged) and out[name].offsets is ids.offsets
    flat = [1, 2, 3, 50, 999, 2, 7]
    known = [i != 999 for i in flat]
    np.testing.assert_array_equal(out["item_id"].values, flat)
    np.testing.assert_array_equal(
        out["item_category"].values, [i % 7 if k else 0 for i, k in zip(flat, known, strict=True)]
    )
    np.testing.assert_allclose(
        out["item_price"].values, [i * 1.5 if k else 0 for i, k in zip(flat, known, strict=True)]
    )
    assert out["item_price"].values.dtype == np.float64
    assert list(out["item_brand"].values) == [
        f"brand{i % 5}" if k else "" for i, k in zip(flat, known, strict=True)
    ]
    np.testing.assert_array_equal(
        out["item_popular"].values, [i % 3 == 0 if k else False for i, k in zip(flat, known, strict=True)]
    )
    np.testing.assert_array_equal(out["item_found"].values, known)
    schema = op.compute_output_schema(CANDIDATES_REQUEST)
    assert all(c.is_ragged for c in schema) and schema["item_price"].dtype == "float64"


def test_dense_candidates_and_unroll(sqlite_repo):
    """(B, k) candidates, user features unrolled next to the item features (Merlin's notebook)."""
    user = ["user_id"] >> user_op(sqlite_repo, output_prefix="user", features=["age", "score"])
    items = ["candidate_ids"] >> item_op(sqlite_repo)
    combined = items >> UnrollFeatures("item_id", user[["user_age", "user_score"]])
    request = Schema(
        [ColumnSchema("user_id", "int64"), ColumnSchema("candidate_ids", "int64", dims=(3,), is_list=True)]
    )
    ens = Ensemble(combined, request)
    cands = np.array([[5, 6, 7], [8, 9, 999]], dtype=np.int64)
    out = ens.transform(Table({"user_id": np.array([2, 30]), "candidate_ids": cands}))
    np.testing.assert_array_equal(out["item_id"].values, cands.ravel())
    np.testing.assert_array_equal(out["user_age"].values, [22, 22, 22, 0, 0, 0])
    np.testing.assert_array_equal(out["item_found"].values, [True] * 5 + [False])
    assert out["item_category"].same_offsets(out["user_age"])


def test_list_feature_with_candidate_lists_is_a_schema_error(sqlite_repo):
    op = QueryFeast.from_feature_view(sqlite_repo, "user_features", "candidate_ids")
    with pytest.raises(SchemaError, match="list of lists"):
        op.compute_output_schema(CANDIDATES_REQUEST)
    op = QueryFeast.from_feature_view(sqlite_repo, "user_features", "candidate_ids", features=["age"])
    assert op.compute_output_schema(CANDIDATES_REQUEST)["age"].is_ragged


def test_naming_prefix_and_id(sqlite_repo):
    store = FeatureStore(repo_path=str(sqlite_repo))
    bare = QueryFeast.from_feature_view(store, "item_features", "candidate_ids", include_found=False)
    assert bare.output_names() == ["item_category", "item_price", "item_brand", "item_popular"]
    with_id = QueryFeast.from_feature_view(
        store, "user_features", "user_id", output_prefix="u", include_id=True
    )
    assert with_id.output_names() == ["u_user_id", "u_age", "u_score", "u_name", "u_genres", "u_found"]
    out = with_id.transform(Table({"user_id": np.array([5, 2, 40])}))  # distinct, unsorted
    np.testing.assert_array_equal(out["u_user_id"], [5, 2, 40])
    check_users(out, [5, 2, 40], prefix="u_")
    with pytest.raises(SchemaError, match="no feature"):
        QueryFeast.from_feature_view(store, "item_features", "candidate_ids", features=["nope"])


def test_wrong_input_column_is_a_schema_error(sqlite_repo):
    with pytest.raises(SchemaError, match="missing"):
        Ensemble(
            ["user_id"] >> QueryFeast.from_feature_view(sqlite_repo, "user_features", "uid"), USER_REQUEST
        )
    with pytest.raises(SchemaError, match="integer"):
        Ensemble(["user_id"] >> user_op(sqlite_repo), Schema([ColumnSchema("user_id", "float32")]))


def test_empty_batch_and_empty_lists(sqlite_repo):
    out = user_op(sqlite_repo).transform(Table({"user_id": np.zeros(0, dtype=np.int64)}))
    assert out.num_rows == 0 and out["age"].shape == (0,) and out["genres"].num_rows == 0
    ids = Ragged.from_lists([[], []], dtype="int64")
    out = item_op(sqlite_repo).transform(Table({"candidate_ids": ids}))
    assert out.num_rows == 2 and out["item_price"].values.shape == (0,)


def test_one_online_call_per_batch_with_dedup(sqlite_repo, monkeypatch):
    """Count real get_online_features calls (the store is real; we only wrap the method)."""
    op = item_op(sqlite_repo)
    calls: list[list[int]] = []
    real = op.store.get_online_features

    def counting(features, entity_rows, **kw):
        calls.append(list(entity_rows["item_id"]))
        return real(features=features, entity_rows=entity_rows, **kw)

    monkeypatch.setattr(op.store, "get_online_features", counting)  # undone after the test
    ids = Ragged.from_lists([[1, 2, 3, 2], [3, 1, 4]], dtype="int64")
    op.transform(Table({"candidate_ids": ids}))
    assert calls == [[1, 2, 3, 4]]


def test_sqlite_and_redis_agree(sqlite_repo, redis_repo):
    ids = Ragged.from_lists([[4, 8, 15], [16, 23, 42, 1000]], dtype="int64")
    a = item_op(sqlite_repo).transform(Table({"candidate_ids": ids}))
    b = item_op(redis_repo).transform(Table({"candidate_ids": ids}))
    assert a == b
