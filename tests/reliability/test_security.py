"""Security: a served export runs no code it was not told to, Triton's admin APIs need the key,
the server binds to loopback, the stub sees an allow-listed environment, and odd bytes in
request ids or huge headers get a documented answer (docs/reliability.md, threat model)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from funnel import ColumnSchema, Ensemble, Schema
from funnel.errors import OperatorNotFound, ServerError
from funnel_triton import TritonServer
from funnel_triton.server import ADMIN_HEADER, allowed_environment
from funnel_testing import RaiseOnValue, demo_ensemble

from .conftest import LISTS, infer_body, json_inputs, post, record
from .graphs import lists_request

MARKER_MODULE = "funnel_marker_mod"
OLD_SHIM = '"""the shim funnel generated before the fix"""\n\nfrom funnel.triton.runtime import ExecutorModel as TritonPythonModel  # noqa: F401\n'


def _poisoned_export(tmp_path: Path, trust_code: bool, old_shim: bool = False) -> tuple[Path, Path]:
    """The demo export with a ``.py`` dropped next to model.py that writes a marker file when
    imported, and funnel-graph.json naming it as an operator's module."""
    marker = tmp_path / "MARKER"
    repo = demo_ensemble().export(tmp_path / "repo", name=LISTS, trust_code=trust_code)
    version = repo / LISTS / "1"
    (version / f"{MARKER_MODULE}.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from funnel_testing import LinearScore as Evil\n"
    )
    graph_file = version / "funnel-graph.json"
    graph = json.loads(graph_file.read_text())
    for node in graph["graph"]["nodes"]:
        if node["kind"] == "op" and node["op"]["type"] == "testing.LinearScore":
            node["op"]["type"] = f"{MARKER_MODULE}:Evil"
    graph_file.write_text(json.dumps(graph))
    if old_shim:
        (version / "model.py").write_text(OLD_SHIM)
    return repo, marker


def _start(repo: Path) -> str:
    try:
        with TritonServer(repo, timeout=60, watchdog=False):
            return "served"
    except ServerError as exc:
        return str(exc)


def test_dropped_py_file_is_never_executed(tmp_path):
    """Fault 5. Control: with the shim funnel generated before (the model's directory left on
    sys.path) and trust on, Triton's Python backend imports the dropped file. Today's shim
    takes the directory off sys.path: the file never runs, trusted or not."""
    control, marker = _poisoned_export(tmp_path / "control", trust_code=True, old_shim=True)
    _start(control)
    assert marker.exists(), "control failed: the backend did not import from the model directory"
    record("security", "control: a .py dropped next to model.py, the old shim, trust_code on", "runs (the threat)",
           "the dropped file ran")

    trusted, marker = _poisoned_export(tmp_path / "trusted", trust_code=True)
    outcome = _start(trusted)
    assert not marker.exists()
    assert MARKER_MODULE in outcome and "could not be imported" in outcome, outcome
    record("security", "a .py dropped next to model.py and named by funnel-graph.json, trust_code on",
           "never imported", "not run; the model fails to load: module not importable")

    untrusted, marker = _poisoned_export(tmp_path / "untrusted", trust_code=False)
    outcome = _start(untrusted)
    assert not marker.exists()
    assert "trust_code=True" in outcome and "FUNNEL_TRUST_CODE" in outcome, outcome
    record("security", "the same, default (no trust_code)", "refused, naming the switch",
           "not run; load refused: 'pass trust_code=True ... or set FUNNEL_TRUST_CODE=1'")


def test_module_operator_types_need_trust_code(tmp_path, monkeypatch):
    """Data only: Ensemble.load and export refuse `module:Name` types no plugin registers
    unless trust_code=True / FUNNEL_TRUST_CODE=1 says otherwise."""
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "funnel_untrusted_ops.py").write_text(
        "from funnel_testing import LinearScore\n\nclass Scaled(LinearScore):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(pkg))
    saved = demo_ensemble().save(tmp_path / "g")
    graph_file = saved / "funnel-graph.json"
    graph = json.loads(graph_file.read_text())
    for node in graph["graph"]["nodes"]:
        if node["kind"] == "op" and node["op"]["type"] == "testing.LinearScore":
            node["op"]["type"] = "funnel_untrusted_ops:Scaled"
    graph_file.write_text(json.dumps(graph))
    monkeypatch.delenv("FUNNEL_TRUST_CODE", raising=False)
    with pytest.raises(OperatorNotFound, match="trust_code=True"):
        Ensemble.load(saved)
    import sys

    assert "funnel_untrusted_ops" not in sys.modules  # refused without importing
    assert Ensemble.load(saved, trust_code=True).transform(lists_request(2)) is not None
    monkeypatch.setenv("FUNNEL_TRUST_CODE", "1")
    loaded = Ensemble.load(saved)
    monkeypatch.delenv("FUNNEL_TRUST_CODE")
    # export: a warning without trust_code (the served model would refuse it), none with it
    with pytest.warns(UserWarning, match="funnel_untrusted_ops:Scaled.*trust_code=True"):
        loaded.export(tmp_path / "warned")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        repo = loaded.export(tmp_path / "repo", trust_code=True)
    assert 'key: "FUNNEL_TRUST_CODE"' in (repo / "funnel" / "config.pbtxt").read_text()
    record("security", "`module:Name` op type no plugin registers: Ensemble.load / export",
           "refused unless trust_code", "refused (module not imported); loads with trust_code=True or FUNNEL_TRUST_CODE=1")


def _status(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_admin_apis_need_the_key_and_the_server_binds_loopback(server):
    """Fault 6: shared-memory, model-repository, logging and trace APIs are closed without the
    key (HTTP 403, gRPC refused); inference, health and metadata stay open."""
    base = f"http://{server.http_url}"
    key = {ADMIN_HEADER: server.admin_key}
    calls = {
        "POST /v2/logging (raise log verbosity)": (f"{base}/v2/logging", b'{"log_verbose_level": 1}'),
        "GET /v2/logging": (f"{base}/v2/logging", None),
        "GET /v2/trace/setting": (f"{base}/v2/trace/setting", None),
        "POST /v2/repository/index": (f"{base}/v2/repository/index", b"{}"),
        "POST /v2/repository/models/lists/unload": (f"{base}/v2/repository/models/{LISTS}/unload", b"{}"),
        "POST /v2/systemsharedmemory/region/x/register": (
            f"{base}/v2/systemsharedmemory/region/x/register", b'{"key": "/triton_python_backend_shm", "offset": 0, "byte_size": 64}'),
        "GET /v2/systemsharedmemory/status": (f"{base}/v2/systemsharedmemory/status", None),
    }
    for label, (url, data) in calls.items():
        code = _status(url, data)
        record("security", f"HTTP {label} without the admin key", "403", str(code))
        assert code == 403, (label, code)
    assert _status(f"{base}/v2/logging", None, key) == 200
    assert _status(f"{base}/v2/systemsharedmemory/status", None, key) == 200
    assert _status(f"{base}/v2/health/ready") == 200 and _status(f"{base}/v2/models/{LISTS}") == 200
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        with pytest.raises(InferenceServerException) as err:
            client.update_log_settings({"log_verbose_level": 1})
        record("security", "gRPC update_log_settings without the key", "refused", f"{err.value.status()}")
        assert client.get_log_settings(headers=server.admin_grpc_headers)
        assert client.is_server_ready()
    finally:
        client.close()
    argv = Path(f"/proc/{server._proc.pid}/cmdline").read_bytes().split(b"\0")
    assert b"--http-address=127.0.0.1" in argv and b"--grpc-address=127.0.0.1" in argv
    record("security", "server addresses by default", "127.0.0.1 only", "--http-address=127.0.0.1 --grpc-address=127.0.0.1")


def test_stub_sees_only_allow_listed_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RELIABILITY_CANARY_SECRET", "s3cr3t")
    monkeypatch.setenv("RELIABILITY_PASSED_ON", "yes")
    monkeypatch.setenv("FUNNEL_RELIABILITY_SETTING", "kept")
    repo = Ensemble(["user_id"] >> RaiseOnValue(), Schema([ColumnSchema("user_id", "int64")])).export(
        tmp_path / "repo", name="raise")
    with TritonServer(repo, pass_env=["RELIABILITY_PASSED_ON"], watchdog=False) as srv:
        (pid,) = srv._stub_processes()
        env = dict(e.split(b"=", 1) for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in e)
    names = {k.decode() for k in env}
    assert "RELIABILITY_CANARY_SECRET" not in names
    assert env[b"RELIABILITY_PASSED_ON"] == b"yes" and env[b"FUNNEL_RELIABILITY_SETTING"] == b"kept"
    allowed = set(allowed_environment({n: "" for n in names}, ["RELIABILITY_PASSED_ON"]))
    assert names - allowed <= {"PWD", "SHLVL", "_", "OLDPWD"}, names - allowed  # bash, which starts the stub, adds these
    record("security", "the stub's environment (a canary secret set in the caller's)", "allow-list only",
           f"{len(names)} variables, canary absent, FUNNEL_* and pass_env kept")


def test_non_utf8_request_id_and_huge_headers(server):
    """Fault 7: what Triton 2.51 does with a request id that is not UTF-8 and with 8 KiB of
    headers, as documented in docs/reliability.md; the server keeps serving afterwards."""
    table = lists_request(2, seed=4)
    schema = demo_ensemble().input_schema
    body = infer_body(json_inputs(table, schema), id="ID").replace(b'"ID"', b'"\xff\xfeid"')
    reply = post(server, f"/v2/models/{LISTS}/infer", body)
    try:
        json.loads(reply.body.decode("utf-8"))
        valid = True
    except (UnicodeDecodeError, ValueError):
        valid = False
    record("wire", "request id holding the bytes ff fe (not UTF-8)", "400, or an answer that is valid JSON",
           f"{reply.status}; {'valid UTF-8 JSON' if valid else 'NOT valid UTF-8 JSON (Triton echoes the id raw)'}: "
           f"{reply.body[:80]!r}")
    assert reply.status == 400 or valid
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        conn.request("POST", f"/v2/models/{LISTS}/infer", body=infer_body(json_inputs(table, schema)),
                     headers={"X-Padding": "a" * 8200})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        status = f"connection closed ({type(exc).__name__})"
    finally:
        conn.close()
    record("wire", "a request with 8 KiB of headers", "documented (Triton's header limit)", str(status))
    assert server.infer(table, model=LISTS) is not None


def test_funnel_serve_offers_the_switches():
    from click.testing import CliRunner

    from funnel_triton.cli import serve_cmd

    out = CliRunner().invoke(serve_cmd, ["--help"])
    assert out.exit_code == 0
    for flag in ("--host", "--admin-key", "--open-admin-api", "--pass-env", "--no-watchdog"):
        assert flag in out.output, flag
    assert "127.0.0.1" in out.output
