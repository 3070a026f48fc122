"""The session example's workflow served on the embedded Triton (executor and ensemble mode):
raw interaction rows in, one row per session out, equal to the offline transform."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as httpclient
import workflow_session_etl as session_etl

from funnel import Ensemble
from funnel.graph import Node
from funnel.table import Ragged, Table
from funnel_triton import TritonServer
from funnel_triton.client import infer
import funnel_workflow as nvt
from funnel_workflow import TransformWorkflow, UntrustedCodeError
from funnel_workflow.testing import builtin_workflow

pytestmark = pytest.mark.triton
EXECUTOR, ENSEMBLE = "workflow", "workflow_ens"
OPS, OPS_ENS = "workflow_ops", "workflow_ops_ens"


@pytest.fixture(scope="module")
def fitted(clicks):
    workflow, _ = session_etl.build(clicks)
    return workflow


@pytest.fixture(scope="module")
def ensemble(fitted):
    return Ensemble(fitted.input_schema.column_names >> TransformWorkflow(fitted), fitted.input_schema)


@pytest.fixture(scope="module")
def builtin(clicks):
    wf = builtin_workflow(clicks)
    cols = wf.input_schema.column_names
    # an extra selection step gives the ensemble-mode step model another name
    # ("2_TransformWorkflow") than the example's, so both fit in one repository
    return wf, Ensemble(Node.coerce(cols)[cols] >> TransformWorkflow(wf), wf.input_schema)


@pytest.fixture(scope="module")
def server(ensemble, builtin, tmp_path_factory):
    base = tmp_path_factory.mktemp("wf_repos")
    ensemble.export(base / "exec", name=EXECUTOR, max_queue_delay_us=20000)
    ensemble.export(base / "ens", mode="ensemble", name=ENSEMBLE)
    builtin[1].export(base / "ops", name=OPS)
    builtin[1].export(base / "ops_ens", mode="ensemble", name=OPS_ENS)
    repo = base / "repo"
    repo.mkdir()
    for src in (base / "exec", base / "ens", base / "ops", base / "ops_ens"):
        for model in src.iterdir():
            if model.is_dir():
                shutil.copytree(model, repo / model.name)
    # the example's lambdas and ItemRecency are code: the server opts in through its environment
    with TritonServer(repo, timeout=120, env={"FUNNEL_TRUST_CODE": "1"}) as srv:
        yield srv


def last_rows(clicks: pd.DataFrame, n: int = 50, offset: int = 0) -> pd.DataFrame:
    """The example's request: the last ``n`` interactions (a few sessions)."""
    d = clicks.sort_values("timestamp", kind="stable")
    return d.iloc[len(d) - n - offset:len(d) - offset].reset_index(drop=True)


def lists(col):
    return col.to_lists() if isinstance(col, Ragged) else np.asarray(col).tolist()


def assert_matches_offline(got: Table, fitted, batch: pd.DataFrame) -> None:
    """Served output: one row per session of the request (one-click sessions kept); the
    sessions the offline Filter keeps are identical to the offline transform."""
    offline = fitted.transform(batch).compute()
    assert got.num_rows == batch["session_id"].nunique()
    counts = np.asarray(got["item_id-count"])
    keep = np.nonzero(counts >= 2)[0]
    assert len(keep) == len(offline)
    for name in offline.columns:
        served = lists(got[name])
        want = [list(v) for v in offline[name]] if isinstance(got[name], Ragged) else offline[name].tolist()
        served = [served[i] for i in keep]
        if name.startswith(("et_dayofweek", "product_recency")):
            for a, b in zip(served, want):
                np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=name)
        elif name == "day_index":
            # `col - col.min()` is over the request's sessions (one-click ones included)
            first = np.asarray(got["day_index"])
            assert first.min() == 1
        else:
            assert served == want, name


def test_in_process_equals_offline(ensemble, fitted, clicks):
    batch = last_rows(clicks)
    got = ensemble.transform(Table.from_pandas(batch, schema=fitted.input_schema))
    assert got.column_names == ensemble.output_schema.column_names
    assert_matches_offline(got, fitted, batch)
    assert (np.asarray(got["item_id-count"]) == 1).any()  # a one-click session is answered (T4R#512)


def test_saved_ensemble_refuses_code_without_opt_in(ensemble, tmp_path, monkeypatch):
    saved = ensemble.save(tmp_path / "ens")
    monkeypatch.delenv("FUNNEL_TRUST_CODE", raising=False)
    with pytest.raises(UntrustedCodeError, match="FUNNEL_TRUST_CODE=1"):
        Ensemble.load(saved)
    monkeypatch.setenv("FUNNEL_TRUST_CODE", "1")
    assert Ensemble.load(saved).output_schema == ensemble.output_schema


@pytest.mark.parametrize("model", [EXECUTOR, ENSEMBLE])
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_equals_offline(server, fitted, clicks, model, protocol):
    batch = last_rows(clicks)
    got = server.infer(Table.from_pandas(batch, schema=fitted.input_schema), model=model, protocol=protocol)
    assert isinstance(got["item_id-list_seq"], Ragged)
    assert_matches_offline(got, fitted, batch)


def test_one_row_request(server, fitted, clicks):
    batch = last_rows(clicks, n=1)
    got = server.infer(Table.from_pandas(batch, schema=fitted.input_schema), model=EXECUTOR)
    assert got.num_rows == 1 and np.asarray(got["item_id-count"]).tolist() == [1]


def test_dynamic_batch_never_merges_sessions_of_two_requests(server, fitted, clicks):
    # every request holds rows of the same sessions; merged, their lists would grow
    batches = [last_rows(clicks, n=30 + i % 3, offset=i % 2) for i in range(16)]
    tables = [Table.from_pandas(b, schema=fitted.input_schema) for b in batches]
    stats0 = _stats(server, EXECUTOR)
    local = threading.local()
    clients = []

    def call(t):
        if not hasattr(local, "client"):
            local.client = httpclient.InferenceServerClient(server.http_url)
            clients.append(local.client)
        return infer(local.client, t, model=EXECUTOR)

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, tables))
    finally:
        for c in clients:
            c.close()
    stats1 = _stats(server, EXECUTOR)
    assert stats1[0] - stats0[0] == len(tables)
    assert stats1[1] - stats0[1] < len(tables)  # requests did share execute() calls
    for got, batch in zip(results, batches):
        assert_matches_offline(got, fitted, batch)
        assert int(np.asarray(got["item_id-count"]).sum()) == len(batch)


def _stats(server, model):
    stats = server.client("http").get_inference_statistics(model)["model_stats"][0]
    # requests answered, and execute() calls (inference_count counts rows, not requests)
    return int(stats["inference_stats"]["success"]["count"]), stats["execution_count"]


@pytest.mark.parametrize("model", [OPS, OPS_ENS])
@pytest.mark.parametrize("rows", [1, 5, 200])
def test_builtin_ops_served_equal_offline(server, builtin, clicks, model, rows):
    wf, ens = builtin
    batch = last_rows(clicks, n=rows)
    table = Table.from_pandas(batch, schema=wf.input_schema)
    got = server.infer(table, model=model)
    assert got == ens.transform(table)
    offline = wf.transform(batch).compute()
    assert got.num_rows == len(offline) == batch["session_id"].nunique()
    for name in offline.columns:
        col = got[name]
        if isinstance(col, Ragged) or np.asarray(col).ndim == 2:
            served = lists(col) if isinstance(col, Ragged) else np.asarray(col).tolist()
            want = [np.asarray(v).tolist() for v in offline[name]]
            if name.startswith("itemid_ts") or name.startswith("price"):
                for a, b in zip(served, want):
                    np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=name)
            else:
                assert served == want, name
        else:
            np.testing.assert_allclose(np.asarray(col, dtype=float), offline[name].to_numpy(dtype=float),
                                       rtol=1e-6, err_msg=name)
    schema = ens.output_schema
    assert schema["category-list"].dims == (3,) and "feature" in schema["price-sum"].tags


def test_builtin_workflow_loads_without_trust(builtin, tmp_path, monkeypatch):
    wf, _ = builtin
    monkeypatch.delenv("FUNNEL_TRUST_CODE", raising=False)
    loaded = nvt.Workflow.load(wf.save(tmp_path / "wf"))
    assert loaded.output_schema == wf.output_schema


def test_encoded_session_key_warns_at_serving(fitted, builtin):
    # the example categorifies session_id before grouping: unseen sessions would share one id
    with pytest.warns(UserWarning, match="'session_id' is Categorify-encoded"):
        TransformWorkflow(fitted)
    assert TransformWorkflow(builtin[0]).warnings == []  # grouped on the raw session_id
