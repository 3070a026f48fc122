"""Served results equal Ensemble.transform(); concurrency; bad requests (real Triton server)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.http as httpclient

from funnel.errors import RequestError
from funnel.table import Ragged, Table
from funnel_testing import demo_request, infer_concurrently, request_counts

from .conftest import ENSEMBLE, EXECUTOR


@pytest.mark.parametrize("model", [EXECUTOR, ENSEMBLE])
@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("rows", [1, 7])
def test_served_equals_transform(server, ensemble, model, rows, protocol):
    request = demo_request(rows, seed=rows)
    expected = ensemble.transform(request)
    got = server.infer(request, model=model, protocol=protocol)
    assert got.column_names == expected.column_names
    assert got == expected
    # scores are non-trivial floats: a stub returning the first element repeated would differ
    assert isinstance(got["score"], Ragged) and len(set(got["score"].values.tolist())) > 1


def test_dataframe_round_trip(server, ensemble):
    df = demo_request(4, seed=3).to_pandas()
    got = server.infer(df)
    want = ensemble.transform(df)
    assert list(got.columns) == list(want.columns)
    for col in want.columns:
        assert [np.asarray(v).tolist() for v in got[col]] == [np.asarray(v).tolist() for v in want[col]]


@pytest.mark.parametrize("model", [EXECUTOR, ENSEMBLE])
def test_concurrent_equals_sequential(server, model):
    requests = [demo_request(1 + i % 5, seed=100 + i) for i in range(24)]
    sequential = [server.infer(r, model=model) for r in requests]
    before = request_counts(server, model)
    concurrent = infer_concurrently(server.http_url, requests, model)
    assert concurrent == sequential
    if model == EXECUTOR:
        after = request_counts(server, model)
        # dynamic batching merged requests: fewer execute() calls than requests
        assert after[0] - before[0] == 24
        assert after[1] - before[1] < 24


def _raw(server, model, arrays):
    client = server.client("http")
    inputs = []
    for name, arr in arrays.items():
        dtype = {"int64": "INT64", "float32": "FP32", "float64": "FP64", "int32": "INT32"}[arr.dtype.name]
        inp = httpclient.InferInput(name, list(arr.shape), dtype)
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    return client.infer(model, inputs)


def _good_arrays():
    from funnel.triton.wire import encode_table

    return {k: np.ascontiguousarray(v) for k, v in encode_table(demo_request(3, seed=9)).items()}


def _bad_requests():
    good = _good_arrays()
    missing = {k: v for k, v in good.items() if k != "user_age"}
    extra = {**good, "surprise": np.zeros((1, 3), np.float32)}
    wrong_dtype = {**good, "user_age": good["user_age"].astype(np.float64)}
    wrong_shape = {**good, "user_id": np.zeros((1, 3, 2), np.int64)}
    two_tables = {k: np.concatenate([v, v]) for k, v in good.items()}
    empty = _empty()
    bad_offsets = {**good, "candidates__offsets": good["candidates__offsets"] + 1}
    wrong_rows = {**good, "user_id": np.zeros((1, 5), np.int64)}
    return {
        "missing input": missing,
        "extra input": extra,
        "wrong dtype": wrong_dtype,
        "wrong shape": wrong_shape,
        "leading dim 2": two_tables,
        "empty batch": empty,
        "bad offsets": bad_offsets,
        "rows differ": wrong_rows,
    }


def _empty():
    from funnel.triton.wire import encode_table

    table = Table({
        "user_id": np.zeros(0, np.int64), "user_age": np.zeros(0, np.float32),
        "candidates": Ragged(np.zeros(0, np.int64), np.zeros(1, np.int64)),
        "seen": Ragged(np.zeros(0, np.int64), np.zeros(1, np.int64)),
    })
    return {k: np.ascontiguousarray(v) for k, v in encode_table(table).items()}


@pytest.mark.parametrize("model", [EXECUTOR, ENSEMBLE])
@pytest.mark.parametrize("case", list(_bad_requests()))
def test_bad_request_gets_error_and_server_keeps_serving(server, ensemble, model, case):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as info:
        _raw(server, model, _bad_requests()[case])
    assert info.value.message()
    request = demo_request(2, seed=5)
    assert server.infer(request, model=model) == ensemble.transform(request)


def test_bad_request_in_a_batch_does_not_fail_the_others(server, ensemble):
    """Concurrent good and bad requests reach one execute(); only the bad one errors."""
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(server.http_url, concurrency=8)
    good = [demo_request(3, seed=40 + i) for i in range(6)]
    bad = {**_good_arrays()}
    bad["candidates__offsets"] = bad["candidates__offsets"] + 1

    from funnel_triton.client import table_to_inputs

    def send(i):
        if i == 3:
            inputs = []
            for name, arr in bad.items():
                inp = httpclient.InferInput(name, list(arr.shape), "INT64" if arr.dtype == np.int64 else "FP32")
                inp.set_data_from_numpy(arr)
                inputs.append(inp)
        else:
            inputs = table_to_inputs(good[i % 6])
        try:
            return client.infer(EXECUTOR, inputs)
        except InferenceServerException as exc:
            return exc

    try:
        with ThreadPoolExecutor(7) as pool:
            results = list(pool.map(send, range(7)))
    finally:
        client.close()
    from funnel_triton.client import response_to_table

    assert isinstance(results[3], InferenceServerException)
    assert "offsets" in results[3].message()
    for i in (0, 1, 2, 4, 5, 6):
        names = [o["name"] for o in results[i].get_response()["outputs"]]
        assert response_to_table(results[i], names) == ensemble.transform(good[i % 6])


def test_request_error_from_helper(server):
    with pytest.raises(RequestError, match="rejected"):
        server.infer({"user_id": np.array([1], np.int64)})
