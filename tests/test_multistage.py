"""The multi-stage demo's pipeline on a small MovieLens slice: in-process and served on Triton."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from funnel.table import Table, to_numpy

from examples.multistage.demo import serve_and_recommend
from examples.multistage.pipeline import build_ensemble, evaluate, popular_items
from examples.multistage.prepare import Artifacts, load_split, prepare

NUM_USERS, NUM_ITEMS = 200, 500


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """Models, feature repo and index for 200 users × 500 items, trained for one epoch."""
    return prepare(tmp_path_factory.mktemp("multistage"), num_users=NUM_USERS, num_items=NUM_ITEMS, epochs=1)


@pytest.fixture(scope="module")
def split():
    return load_split(NUM_USERS, NUM_ITEMS)


@pytest.fixture(scope="module")
def request_users(split) -> list[int]:
    """Five users with short histories (so ≥ 10 of their 100 candidates are unseen)."""
    sizes = split.train.groupby("user_id").size().sort_values(kind="stable")
    return [int(u) for u in sizes.index[:5]]


def test_in_process_returns_ten_valid_unseen_items(artifacts: Artifacts, split, request_users: list[int]) -> None:
    ens = build_ensemble(artifacts, seed=3)
    out = ens.transform(Table({"user_id": np.asarray(request_users, dtype=np.int64)}))
    ids = to_numpy(out["ordered_ids"])
    assert ids.shape == (len(request_users), 10)
    assert np.isfinite(to_numpy(out["ordered_scores"])).all()
    known = set(split.data.items.item_id.tolist())
    seen = split.train.groupby("user_id").item_id.apply(set)
    for user, row in zip(request_users, ids.tolist(), strict=False):
        assert len(set(row)) == 10
        assert set(row) <= known
        assert not set(row) & seen[user]


UNKNOWN_USERS = [-1, 0, 999_999]  # not in the feature store: negative, the padding id, beyond the table


def test_unknown_users_get_the_flagged_popular_fallback(artifacts: Artifacts, request_users: list[int]) -> None:
    """Issue 12 item 9: unknown ids are answered per row, flagged; the known rows are unaffected."""
    ens = build_ensemble(artifacts, seed=3)
    users = np.asarray([request_users[0], *UNKNOWN_USERS, request_users[1]], dtype=np.int64)
    out = ens.transform(Table({"user_id": users}))
    assert to_numpy(out["fallback"]).tolist() == [False, True, True, True, False]
    ids = to_numpy(out["ordered_ids"])
    popular = popular_items(artifacts, 10)
    for row in ids[1:4]:
        assert row.tolist() == popular
    known_alone = build_ensemble(artifacts, seed=3).transform(Table({"user_id": users[[0]]}))
    np.testing.assert_array_equal(ids[0], to_numpy(known_alone["ordered_ids"])[0])
    assert to_numpy(out["ordered_lengths"]).tolist() == [10] * 5


def test_served_output_equals_in_process(artifacts: Artifacts, request_users: list[int], tmp_path: Path) -> None:
    users = [*request_users, *UNKNOWN_USERS]  # one request: known and unknown users together
    served, local = serve_and_recommend(artifacts, tmp_path / "repo", users, temperature=0.1, seed=7, log=print)
    assert (tmp_path / "repo" / "funnel" / "config.pbtxt").is_file()
    np.testing.assert_array_equal(to_numpy(served["ordered_ids"]), to_numpy(local["ordered_ids"]))
    np.testing.assert_allclose(to_numpy(served["ordered_scores"]), to_numpy(local["ordered_scores"]), rtol=1e-5)
    assert to_numpy(served["ordered_ids"]).shape == (len(users), 10)
    assert to_numpy(served["fallback"]).tolist() == [False] * len(request_users) + [True] * len(UNKNOWN_USERS)


def test_evaluate_and_cache_reuse(artifacts: Artifacts, split) -> None:
    quality = evaluate(artifacts, split, batch_size=64, log=lambda m: None)
    assert quality.users == split.test.user_id.nunique()
    for value in (quality.retrieval_recall_100, quality.pipeline_recall_10, quality.popularity_recall_10):
        assert 0.0 <= value <= 1.0 and not math.isnan(value)
    again = prepare(artifacts.workdir, num_users=NUM_USERS, num_items=NUM_ITEMS, epochs=1, log=lambda m: None)
    assert again == artifacts
