"""Standard Triton batching (issue 12 item 3) and client encoding (item 7), on a served export.

A scalar-only request is exported in the rows wire form: rows in Triton's batch dimension
([B, 1]); docs/serving.md's plain-tritonclient example is executed here as written.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from funnel import ColumnSchema, Ensemble, Ragged, Schema, Table
from funnel.errors import RequestError
from funnel.ops import FilterCandidates
from funnel_triton import TritonServer
from funnel_triton.client import cast_to_model, infer
from funnel_testing import UserCandidates, rows_ensemble

DOCS = Path(__file__).parents[3] / "docs" / "serving.md"
LIST_MODEL = "lists"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("wire")
    repo = base / "repo"
    rows_ensemble().export(base / "rows", name="funnel", max_batch_size=256, max_queue_delay_us=2000)
    # a request with a list column (already-seen items) keeps the request form
    req = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("seen", "int64", dims=(None,))])
    from funnel import ColumnSelector

    lists = Ensemble(["user_id"] >> UserCandidates() >> FilterCandidates(ColumnSelector(["seen"]), input_col="candidates"), req)
    lists.export(base / "lists", name=LIST_MODEL)
    repo.mkdir()
    import shutil

    for src in (base / "rows", base / "lists"):
        for model in src.iterdir():
            if model.is_dir():
                shutil.copytree(model, repo / model.name)
    with TritonServer(repo, timeout=120) as server:
        yield server, lists


def test_config_declares_rows_in_the_batch_dimension(served, tmp_path):
    path = rows_ensemble().export(tmp_path / "r", name="m", max_batch_size=64)
    text = (path / "m" / "config.pbtxt").read_text()
    assert "max_batch_size: 64" in text
    assert re.search(r'name: "user_id"\s+data_type: TYPE_INT64\s+dims: \[ 1 \]', text)
    assert re.search(r'name: "candidates__lengths"\s+data_type: TYPE_INT64\s+dims: \[ 1 \]', text)
    assert '"FUNNEL_WIRE_FORM"\n  value: { string_value: "rows" }' in text


def test_64_users_as_b_by_1(served):
    server, _ = served
    client = httpclient.InferenceServerClient(server.http_url)
    users = np.arange(64, dtype=np.int64).reshape(64, 1)
    inp = httpclient.InferInput("user_id", [64, 1], "INT64")
    inp.set_data_from_numpy(users)
    result = client.infer("funnel", [inp])
    want = rows_ensemble().transform({"user_id": users[:, 0]})
    padded, lengths = result.as_numpy("candidates"), result.as_numpy("candidates__lengths")
    assert padded.shape[0] == 64 and lengths.shape == (64, 1)
    assert Ragged.from_dense(padded, lengths[:, 0]) == want["candidates"]
    assert result.as_numpy("best").shape == (64, 1)
    np.testing.assert_array_equal(result.as_numpy("best")[:, 0], want["best"])


def test_docs_plain_tritonclient_example_runs(served):
    server, _ = served
    text = DOCS.read_text()
    code = re.search(r"```python\n# plain tritonclient example\n(.*?)```", text, re.S).group(1)
    scope: dict = {"URL": server.http_url}
    exec(compile(code, str(DOCS), "exec"), scope)  # noqa: S102 - the documented example, as written
    assert scope["candidates"] == [[70, 71], [110, 111, 112], [], [420]]
    assert scope["best"].tolist() == [70, 110, -1, 420]


def test_funnel_client_and_old_request_form_agree(served):
    server, _ = served
    users = np.array([5, -3, 8], dtype=np.int64)
    want = rows_ensemble().transform({"user_id": users})
    got = server.infer({"user_id": users})
    assert got["candidates"] == want["candidates"] and got["scores"] == want["scores"]
    np.testing.assert_array_equal(got["best"], want["best"])
    # the request form [1, B] is refused by Triton itself, with the shape it expects
    client = httpclient.InferenceServerClient(server.http_url)
    inp = httpclient.InferInput("user_id", [1, 3], "INT64")
    inp.set_data_from_numpy(users[None])
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match=r"Expected \[-1,1\], got \[1,3\]"):
        client.infer("funnel", [inp])


def test_dict_of_lists_keeps_the_list_representation(served):
    """Item 7: equal-length and all-empty lists are still list columns on the wire."""
    server, lists = served
    for seen in ([[50], [51]], [[], []]):
        data = {"user_id": [5, 5], "seen": seen}
        got = server.infer(data, model=LIST_MODEL)
        want = lists.transform(data)
        assert got["candidates"] == want["candidates"]


def test_client_mistakes_name_the_column(served):
    server, _ = served
    client = server.client("http")
    with pytest.raises(RequestError, match=r"column 'user_id' has values in \[1, 1\.5\]|'user_id' holds non-integer"):
        cast_to_model(client, {"user_id": np.array([1.0, 1.5])}, "funnel")
    with pytest.raises(RequestError, match="column 'user_id' holds strings .* send numeric ids"):
        cast_to_model(client, {"user_id": np.array(["u1", "u2"], dtype=object)}, "funnel")
    import pandas as pd

    csv_like = pd.DataFrame({"user_id": [1, 2], "seen": ["[1, 2]", "[3]"]})
    with pytest.raises(RequestError, match="column 'seen' must hold a list per row .* CSV cannot carry lists"):
        cast_to_model(client, csv_like, LIST_MODEL)
    with pytest.raises(RequestError, match=r"'user_id' has values in \[1, 18446744073709551615\], outside the range of int64"):
        infer(client, Table({"user_id": np.array([1, 2**64 - 1], dtype=np.uint64)}), model="funnel")


def test_graph_checked_against_config_pbtxt_at_load(tmp_path):
    """Item 10: a funnel-graph.json that disagrees with config.pbtxt fails the load, naming the tensor."""
    import json

    from funnel.errors import ServerError
    from funnel_testing import demo_ensemble

    repo = demo_ensemble(k=3).export(tmp_path / "repo", name="funnel")
    graph_file = repo / "funnel" / "1" / "funnel-graph.json"
    doc = json.loads(graph_file.read_text())
    (entry,) = [n for n in doc["graph"]["nodes"] if n["kind"] == "op" and n["op"]["type"].endswith("TopByScore")]
    entry["op"]["config"]["k"] = 5  # hand-edited: the config still declares 3
    graph_file.write_text(json.dumps(doc))
    with pytest.raises(ServerError, match=r"output tensor 'top_ids' is INT64 \[-1, 5\] in the graph but INT64 \[-1, 3\] in the config"):
        with TritonServer(repo, timeout=120):
            pass


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_funnel_infer_reports_csv_lists_and_string_ids(served, tmp_path, protocol):
    """Item 7: `funnel infer` names the column instead of 'could not reach'; rows-form answers print."""
    import json

    from click.testing import CliRunner

    from funnel_triton.cli import infer_cmd

    server, _ = served
    url = server.http_url if protocol == "http" else server.grpc_url
    csv = tmp_path / "rows.csv"
    csv.write_text('user_id,seen\n1,"[1, 2]"\n2,"[3]"\n')
    result = CliRunner().invoke(infer_cmd, [str(csv), "--url", url, "--protocol", protocol, "--model", LIST_MODEL])
    assert result.exit_code != 0 and "could not reach" not in result.output
    assert "column 'seen' must hold a list per row" in result.output and "CSV cannot carry lists" in result.output
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps([{"user_id": "u1"}]))
    result = CliRunner().invoke(infer_cmd, [str(ids), "--url", url, "--protocol", protocol])
    assert result.exit_code != 0 and "column 'user_id' holds strings" in result.output
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps([{"user_id": 7}, {"user_id": 11}]))
    result = CliRunner().invoke(infer_cmd, [str(ok), "--url", url, "--protocol", protocol, "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert [r["candidates"] for r in got] == [[70, 71], [110, 111, 112]] and [r["best"] for r in got] == [70, 110]
