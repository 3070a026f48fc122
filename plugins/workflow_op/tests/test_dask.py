"""Fit and transform on Dask (a distributed LocalCluster with 2 workers) equal single-process."""

from __future__ import annotations

import dask.dataframe as dd  # funnel-workflow[dask]
import distributed
import numpy as np
import pytest
import workflow_session_etl as session_etl

import funnel_workflow as nvt
from funnel_workflow import ops


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def _sorted(df, key):
    return df.sort_values(key).reset_index(drop=True)


def test_session_example_on_dask_equals_single_process(client, clicks, tmp_path):
    single_wf, single = session_etl.build(clicks)
    ddf = dd.from_pandas(clicks, npartitions=4)
    # the example's own code with a Dask DataFrame: nvt.Dataset(ddf), fit, transform().compute()
    wf, got = session_etl.build(ddf)
    for name in ("item_id", "session_id", "category"):
        assert wf.categories(name).equals(single_wf.categories(name))
    got = _sorted(got, "session_id")
    want = single
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    for col in ("session_id", "item_id-count", "item_id-list_seq", "category-list_seq"):
        assert [np.asarray(v).tolist() for v in got[col]] == [np.asarray(v).tolist() for v in want[col]], col
    for col in ("et_dayofweek_sin-list_seq", "product_recency_days_log_norm-list_seq"):
        for a, b in zip(got[col], want[col]):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5)
    out = wf.transform(nvt.Dataset(ddf))
    assert out.is_dask and out.npartitions == 4
    # to_ddf and to_parquet hold the same rows
    assert len(out.to_ddf().compute()) == len(want)
    files = sorted(out.to_parquet(tmp_path / "sessions").glob("*.parquet"))
    assert len(files) == 4
    back = _sorted(nvt.Dataset(tmp_path / "sessions").compute(), "session_id")
    assert back["item_id-count"].tolist() == want["item_id-count"].tolist()


def test_stats_combine_across_partitions(client, clicks):
    ddf = dd.from_pandas(clicks, npartitions=3)
    node = ["timestamp"] >> ops.Normalize()
    wf = nvt.Workflow(node).fit(nvt.Dataset(ddf))
    (op,) = wf.ops
    m = op.moments["timestamp"]
    assert m["count"] == len(clicks)
    np.testing.assert_allclose(m["mean"], clicks.timestamp.mean())
    np.testing.assert_allclose(m["std"], clicks.timestamp.std(), rtol=1e-6)
