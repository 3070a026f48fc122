"""The session demo's pipeline on a reduced MovieLens slice: the ported workflow, XLNet, and
the served graph (raw rows in, raw movie ids out) on the embedded Triton."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from funnel import Table

from examples.session.data import load_interactions, titles
from examples.session.demo import serve
from examples.session.pipeline import Settings, build_ensemble, example_request, prepare, quality

pytestmark = pytest.mark.triton

SETTINGS = Settings(max_users=120, epochs=1, d_model=32, n_layer=1, batch_size=128)


@pytest.fixture(scope="module")
def prep(tmp_path_factory: pytest.TempPathFactory):
    return prepare(tmp_path_factory.mktemp("session"), SETTINGS, log=lambda m: None)


def test_sessions_are_cut_at_30_minute_gaps_and_cleaned():
    raw = load_interactions(max_users=30)
    per = raw.sort_values(["session_id", "timestamp"]).groupby("session_id")
    # within a session no gap exceeds 30 minutes; consecutive repeats are gone
    assert (per.timestamp.diff().dropna() <= 30 * 60).all()
    assert not ((raw.session_id == raw.session_id.shift()) & (raw.item_id == raw.item_id.shift())).any()
    first = raw.groupby("item_id").timestamp.min()
    assert (raw.itemid_ts_first == raw.item_id.map(first)).all()
    # a new session starts after a gap of more than 30 minutes
    for _, user in raw.sort_values("timestamp", kind="stable").groupby("user_id"):
        gaps = user.timestamp.diff() > 30 * 60
        assert (user.session_id.diff()[gaps] > 0).all()


def test_etl_splits_by_day_and_feeds_the_model(prep):
    assert prep.train.num_rows > 0 and prep.test.num_rows > 0
    assert prep.losses[-1] == prep.losses[-1]  # finite loss
    q = quality(prep)
    assert set(q) == {"XLNet (funnel_torch.session)", "popularity", "last-item transitions"}
    assert all(0.0 <= m["recall@20"] <= 1.0 for m in q.values())


def test_served_equals_in_process_and_returns_real_movie_ids(prep, tmp_path):
    ens = build_ensemble(prep, top_k=20)
    batch = example_request(prep.raw)
    # add a one-click session: the offline-only Filter must not drop it at serving
    single = prep.raw[~prep.raw.session_id.isin(batch.session_id)].iloc[[0]]
    batch = pd.concat([batch, single])
    cols = prep.workflow.input_schema.column_names
    request = Table.from_pandas(batch[cols].reset_index(drop=True))
    served = serve(ens, tmp_path / "repo", request, log=lambda m: None)
    local = ens.transform(request)
    n_sessions = batch.session_id.nunique()
    assert served.num_rows == n_sessions == local.num_rows
    assert served["item_ids"].to_lists() == local["item_ids"].to_lists()
    np.testing.assert_allclose(np.asarray(served["item_id_scores"].values),
                               np.asarray(local["item_id_scores"].values), rtol=1e-5)
    known = set(titles())
    decoded = prep.workflow.decode("session_id", np.asarray(served["session_id"]))
    assert set(int(s) for s in decoded) == set(int(s) for s in batch.session_id)
    for sid, items in zip(decoded, served["item_ids"].to_lists(), strict=True):
        assert len(items) == 20, sid
        assert set(items) <= known, sid  # raw MovieLens ids, decoded in the graph
        # the items of the session's sequence (ListSlice keeps its first 20) are excluded
        clicked = set(batch[batch.session_id == sid].sort_values("timestamp").item_id[:20])
        assert not clicked & set(items), sid
    one = int(single.session_id.iloc[0])
    assert one in set(int(s) for s in decoded)


def test_settings_are_plain_data():
    assert dataclasses.asdict(SETTINGS)["max_users"] == 120
