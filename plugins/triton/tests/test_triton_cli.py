"""`funnel serve` in a subprocess, `funnel infer` against it (HTTP and gRPC); the commands' help
and their errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from funnel_testing import demo_request

from funnel_triton.server import _free_port

FUNNEL = str(Path(sys.executable).parent / "funnel")


@pytest.fixture(scope="module")
def served(ensemble, tmp_path_factory):
    repo = ensemble.export(tmp_path_factory.mktemp("cli") / "repo")
    http, grpc = _free_port(), _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "funnel.cli", "serve", str(repo), "--http-port", str(http), "--grpc-port", str(grpc)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=1).status == 200:
                break
        except OSError:
            time.sleep(0.2)
    yield http, grpc
    os.killpg(proc.pid, signal.SIGINT)
    # TritonServer.stop's contract: the watchdog joins (≤ 60 s), then SIGINT and SIGKILL after 15 s;
    # on a loaded 2-core CI machine Triton's own graceful unload alone can take most of the 15 s
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0].decode(errors="replace")
        pytest.fail(f"`funnel serve` did not stop within 90 s of Ctrl-C; its output:\n{out[-3000:]}")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_infer_command(served, ensemble, tmp_path, protocol, funnel_cli):
    http, grpc = served
    request = demo_request(3, seed=11)
    rows = request.to_pandas()
    path = tmp_path / "rows.json"
    path.write_text(rows.to_json(orient="records"))
    port = http if protocol == "http" else grpc
    result = CliRunner().invoke(
        funnel_cli, ["infer", str(path), "--url", f"127.0.0.1:{port}", "--protocol", protocol, "--json"]
    )
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    want = ensemble.transform(request).to_pandas()
    assert [r["top_ids"] for r in got] == [list(map(int, v)) for v in want["top_ids"]]
    assert [r["candidates"] for r in got] == [list(map(int, v)) for v in want["candidates"]]


def test_help_texts(funnel_cli):
    for cmd in ("serve", "infer"):
        result = CliRunner().invoke(funnel_cli, [cmd, "--help"])
        assert result.exit_code == 0 and "REPOSITORY" in result.output or "ROWS" in result.output


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("FUNNEL_LOAD_PLUGINS", "PYTHONPATH")}


def test_infer_with_an_unreadable_rows_file_says_what_is_expected(tmp_path):
    bad = tmp_path / "rows.json"
    bad.write_text("not json at all")
    proc = subprocess.run([FUNNEL, "infer", str(bad), "--url", "127.0.0.1:1"], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert proc.returncode == 1 and "cannot read request rows" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_of_a_missing_repository_is_a_usage_error(tmp_path):
    proc = subprocess.run([FUNNEL, "serve", str(tmp_path / "nope")], capture_output=True, text=True, env=_env(),
                          timeout=120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
