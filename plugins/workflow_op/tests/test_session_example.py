"""The Transformers4Rec example's ETL (session-example.md section 2), ported by changing the
import only, fitted on generated clicks and checked against plain pandas computed here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import workflow_session_etl as session_etl

import funnel_workflow as nvt
from funnel_workflow import UntrustedCodeError


def expected_sessions(df: pd.DataFrame) -> pd.DataFrame:
    """The same features with pandas only (legacy Categorify: OOV/null 1, values sorted from 2)."""
    d = df.copy()
    for col in ("session_id", "category", "item_id"):
        uniq = np.sort(d[col].unique())
        d[col] = pd.Series(np.searchsorted(uniq, d[col].to_numpy()) + 2, index=d.index)
    d["event_time_dt"] = pd.to_datetime(d["timestamp"], unit="s")
    wd = d["event_time_dt"].dt.weekday
    d["et_dayofweek_sin"] = np.sin(2 * np.pi * ((wd + 1) + 0.000001) / 7)
    age = (d["timestamp"] - d["itemid_ts_first"]) / 86400
    age = age * (age >= 0)
    logv = np.log1p(age.astype(np.float32)).astype(np.float64)
    d["product_recency_days_log_norm"] = ((logv - logv.mean()) / logv.std()).astype(np.float32)
    d = d.sort_values(["session_id", "timestamp"], kind="stable")
    g = d.groupby("session_id", sort=True)
    out = pd.DataFrame({
        "session_id": g.size().index.to_numpy(),
        "item_id-count": g["item_id"].count().to_numpy(),
    })
    for col in ("item_id", "category", "et_dayofweek_sin", "product_recency_days_log_norm"):
        out[f"{col}-list_seq"] = [v[:20] for v in g[col].apply(lambda s: s.to_numpy()).to_numpy()]
    first_dt = g["event_time_dt"].first().to_numpy()
    out["day_index"] = ((first_dt - first_dt.min()) / np.timedelta64(1, "D")).astype(np.int64) + 1
    return out[out["item_id-count"] >= 2].reset_index(drop=True)


def assert_sessions_equal(got: pd.DataFrame, want: pd.DataFrame, day_index: bool = True) -> None:
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for col in ("session_id", "item_id-count", *(("day_index",) if day_index else ())):
        np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy(), err_msg=col)
    for col in ("item_id-list_seq", "category-list_seq"):
        for a, b in zip(got[col], want[col]):
            np.testing.assert_array_equal(np.asarray(a), b, err_msg=col)
    for col in ("et_dayofweek_sin-list_seq", "product_recency_days_log_norm-list_seq"):
        for a, b in zip(got[col], want[col]):
            np.testing.assert_allclose(np.asarray(a, dtype=np.float64), b, rtol=1e-5, atol=1e-5, err_msg=col)


@pytest.fixture(scope="module")
def fitted(clicks):
    return session_etl.build(clicks)


def test_etl_matches_pandas(clicks, fitted):
    workflow, sessions = fitted
    want = expected_sessions(clicks)
    assert len(want) > 100 and (want["item_id-count"] > 20).any()  # truncation is exercised
    assert_sessions_equal(sessions, want)


def test_output_schema_describes_the_model_inputs(clicks, fitted):
    workflow, _ = fitted
    schema = workflow.output_schema
    item = schema["item_id-list_seq"]
    assert item.is_list and item.is_ragged
    assert {"categorical", "item_id", "list"} <= set(item.tags)
    assert item.properties["cardinality"] == clicks["item_id"].nunique() + 2  # ids 0, 1 reserved
    assert item.properties["value_count"] == {"min": 0, "max": 20}
    assert schema["session_id"].properties["cardinality"] == clicks["session_id"].nunique() + 2
    assert "continuous" in schema["product_recency_days_log_norm-list_seq"].tags
    assert "continuous" in schema["et_dayofweek_sin-list_seq"].tags  # a float made by a lambda
    assert schema["day_index"].dtype == "int64"


def test_categories_decode_back_to_raw_ids(clicks, fitted):
    workflow, sessions = fitted
    cats = workflow.categories("item_id")
    assert list(cats.columns) == ["encoded", "item_id", "count"]
    assert cats["encoded"].iloc[0] == 2 and cats["item_id"].is_monotonic_increasing
    assert cats["count"].sum() == len(clicks)
    encoded = np.concatenate(sessions["item_id-list_seq"].map(np.asarray).to_list())
    raw = workflow.decode("item_id", encoded)
    assert set(raw.tolist()) <= set(clicks["item_id"].tolist())
    # the session's decoded sequence is its raw clicks in time order
    sid_raw = workflow.decode("session_id", sessions["session_id"].to_numpy()[:1])[0]
    one = clicks[clicks.session_id == sid_raw].sort_values("timestamp", kind="stable")
    np.testing.assert_array_equal(workflow.decode("item_id", np.asarray(sessions["item_id-list_seq"][0])),
                                  one["item_id"].to_numpy()[:20])
    with pytest.raises(Exception, match="reserved"):
        workflow.decode("item_id", np.array([0, 1]))


def test_save_load_round_trip_needs_trust_for_code(clicks, fitted, tmp_path):
    workflow, sessions = fitted
    path = workflow.save(tmp_path / "workflow_etl")
    doc = json.loads((path / "workflow.json").read_text())
    assert not list(path.rglob("*.pkl")) and not list(path.rglob("*.pickle"))
    # statistics are readable data: Normalize's moments in JSON, vocabularies in parquet
    assert any("moments" in json.loads(f.read_text())["stats"] for f in path.glob("stats/*/stats.json"))
    vocab = pd.read_parquet(next(path.glob("stats/*_Categorify/unique.item_id.parquet")))
    assert vocab["item_id"].tolist() == workflow.categories("item_id")["item_id"].tolist()
    # user code is saved as readable source
    assert "class ItemRecency" in next(path.glob("code/*_ItemRecency.py")).read_text()
    assert "pd.to_datetime(col, unit='s')" in json.dumps(doc)
    with pytest.raises(UntrustedCodeError, match="trust_code=True"):
        nvt.Workflow.load(path)
    loaded = nvt.Workflow.load(path, trust_code=True)
    again = loaded.transform(nvt.Dataset(clicks)).compute()
    assert_sessions_equal(again, sessions)
    assert loaded.output_schema == workflow.output_schema


def test_trust_from_environment(clicks, fitted, tmp_path, monkeypatch):
    workflow, sessions = fitted
    path = workflow.save(tmp_path / "wf")
    monkeypatch.setenv("FUNNEL_TRUST_CODE", "1")
    loaded = nvt.Workflow.load(path)
    assert_sessions_equal(loaded.transform(clicks).compute(), sessions)


def test_multi_partition_fit_equals_single(clicks, fitted, capsys):
    workflow, sessions = fitted
    wf4, again = session_etl.build_with(clicks, npartitions=4)
    assert "fit Normalize" in capsys.readouterr().err  # a tqdm bar over the partitions
    # groups are hash-partitioned on the session key: sort to compare
    again = again.sort_values("session_id").reset_index(drop=True)
    # the example's `col - col.min()` runs per partition (as in NVTabular): day_index is
    # partition-relative, everything else equals the single-partition result
    assert_sessions_equal(again, sessions, day_index=False)
    for name in ("item_id", "session_id", "category"):
        pd.testing.assert_frame_equal(wf4.categories(name), workflow.categories(name))


@pytest.mark.parametrize("engine", [None, "dask"])
def test_fit_on_parquet_directory(clicks, fitted, tmp_path, engine):
    workflow, sessions = fitted
    for i, part in enumerate(np.array_split(np.arange(len(clicks)), 3)):
        clicks.iloc[part].to_parquet(tmp_path / f"part_{i}.parquet")
    wf, _ = session_etl.build(clicks.iloc[:10])  # a graph; refit it on the directory below
    wf.fit(nvt.Dataset(tmp_path, engine=engine))
    for name in ("item_id", "session_id", "category"):
        pd.testing.assert_frame_equal(wf.categories(name), workflow.categories(name))
    (norm,) = [op for op in wf.ops if type(op).__name__ == "Normalize"]
    (ref,) = [op for op in workflow.ops if type(op).__name__ == "Normalize"]
    assert norm.moments["timestamp_age_days"] == pytest.approx(ref.moments["timestamp_age_days"])
    out = wf.transform(nvt.Dataset(tmp_path, engine=engine))
    assert out.npartitions == 3 and out.is_dask == (engine == "dask")
    got = out.compute().sort_values("session_id").reset_index(drop=True)
    assert_sessions_equal(got, sessions, day_index=False)
