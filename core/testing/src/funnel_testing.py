"""Test operators and demo graphs for funnel's test suites (distribution ``funnel-testing``).

Operators a served model uses must be importable in the server's Python environment: this
module is installed next to funnel in the test environments (not shipped in funnel's wheel)
and registers its operators as the plugin ``testing`` (type names ``testing.<Name>``).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from funnel.ensemble import Ensemble
from funnel.hookspecs import hookimpl
from funnel.operator import Node
from funnel.operator import Operator
from funnel.ops.filter import FilterCandidates
from funnel.ops.unroll import UnrollFeatures
from funnel.schema import ColumnSchema, Schema
from funnel.table import Ragged, Table

__all__ = ["LinearScore", "TopByScore", "RaiseOnValue", "UserCandidates", "demo_ensemble", "demo_request", "rows_ensemble",
           "combined_repository", "infer_concurrently", "request_counts", "loopback_server"]


class LinearScore(Operator):
    """Row-wise test scorer: ``score = weight * item + user_age`` (float32)."""

    type_name = "testing.LinearScore"

    rowwise = True

    def __init__(self, weight: float = 0.37, item_col: str = "candidates", user_col: str = "user_age") -> None:
        self.weight = float(weight)
        self.item_col = item_col
        self.user_col = user_col

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        self.require(input_schema, [self.item_col, self.user_col])
        return Schema([ColumnSchema("score", "float32")])

    def transform(self, table: Table) -> Table:
        xp = np if type(table[self.item_col]).__module__ == "numpy" else __import__("cupy")
        score = table[self.item_col].astype(xp.float32) * xp.float32(self.weight) + table[self.user_col].astype(xp.float32)
        return Table({"score": score})

    def to_config(self) -> dict[str, Any]:
        return {"weight": self.weight, "item_col": self.item_col, "user_col": self.user_col}


class TopByScore(Operator):
    """Ordering test op: the ``k`` best-scored candidates per row as a dense (B, k) int64 array
    (padded with -1) plus their scores."""

    type_name = "testing.TopByScore"

    def __init__(self, k: int = 3) -> None:
        self.k = int(k)

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        self.require(input_schema, ["candidates", "score"], list_column=True)
        return Schema([
            ColumnSchema("top_ids", "int64", dims=(self.k,), is_list=True, is_ragged=False),
            ColumnSchema("top_scores", "float32", dims=(self.k,), is_list=True, is_ragged=False),
        ])

    def transform(self, table: Table) -> Table:
        ids = Ragged(_host(table["candidates"].values), _host(table["candidates"].offsets))
        scores = Ragged(_host(table["score"].values), _host(table["score"].offsets))
        b = ids.num_rows
        top_ids = np.full((b, self.k), -1, dtype=np.int64)
        top_scores = np.zeros((b, self.k), dtype=np.float32)
        for r in range(b):
            s, i = scores.row(r), ids.row(r)
            order = np.argsort(-s, kind="stable")[: self.k]
            top_ids[r, : order.size] = i[order]
            top_scores[r, : order.size] = s[order]
        return Table({"top_ids": top_ids, "top_scores": top_scores})

    def to_config(self) -> dict[str, Any]:
        return {"k": self.k}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TopByScore:
        return cls(**config)


class RaiseOnValue(Operator):
    """Fault-injection test op: passes ``column`` through as ``checked``; raises RequestError
    when it holds ``client_value`` and RuntimeError (a server fault) when it holds
    ``server_value``. Each call appends its row count to ``calls_file`` (when set), so a test
    can count how often requests ran."""

    type_name = "testing.RaiseOnValue"

    def __init__(self, column: str = "user_id", client_value: int = -666, server_value: int = -777,
                 calls_file: str = "") -> None:
        self.column = column
        self.client_value = int(client_value)
        self.server_value = int(server_value)
        self.calls_file = calls_file

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        self.require(input_schema, [self.column])
        return Schema([ColumnSchema("checked", input_schema[self.column].dtype)])

    def transform(self, table: Table) -> Table:
        from funnel.errors import RequestError  # noqa: PLC0415

        values = np.asarray(table[self.column])
        if self.calls_file:
            with open(self.calls_file, "a") as f:
                f.write(f"{values.size}\n")
        if (values == self.client_value).any():
            raise RequestError(f"column {self.column!r} holds {self.client_value}, which this test op refuses")
        if (values == self.server_value).any():
            raise RuntimeError(f"injected server fault on {self.server_value}")
        return Table({"checked": values.copy()})

    def to_config(self) -> dict[str, Any]:
        return {"column": self.column, "client_value": self.client_value, "server_value": self.server_value,
                "calls_file": self.calls_file}


def _host(arr: Any) -> np.ndarray:
    return arr.get() if type(arr).__module__.startswith("cupy") else np.asarray(arr)


REQUEST_SCHEMA = Schema([
    ColumnSchema("user_id", "int64"),
    ColumnSchema("user_age", "float32"),
    ColumnSchema("candidates", "int64", dims=(None,)),
    ColumnSchema("seen", "int64", dims=(None,)),
])


def demo_ensemble(k: int = 3) -> Ensemble:
    """request → FilterCandidates(seen) → UnrollFeatures(user cols) → LinearScore → TopByScore,
    plus the filtered candidates and their scores as ragged outputs."""
    filtered = Node.coerce(["candidates", "seen"]) >> FilterCandidates("seen", input_col="candidates")
    unrolled = filtered >> UnrollFeatures("candidates", Node.coerce(["user_id", "user_age"]))
    scored = unrolled >> LinearScore()
    ranked = (unrolled["candidates"] + scored) >> TopByScore(k)
    return Ensemble(ranked + scored + unrolled["candidates"], REQUEST_SCHEMA)


def demo_request(rows: int, seed: int = 0) -> Table:
    """A request of ``rows`` users with ragged candidate and seen lists (some empty)."""
    rng = np.random.default_rng(seed)
    cand = [rng.choice(1000, size=int(rng.integers(0, 9)), replace=False).astype(np.int64) for _ in range(rows)]
    seen = [np.asarray(c[: int(rng.integers(0, len(c) + 1))][::2], dtype=np.int64) for c in cand]
    return Table({
        "user_id": np.arange(rows, dtype=np.int64) + 100,
        "user_age": (rng.random(rows) * 50 + 18).astype(np.float32),
        "candidates": Ragged.from_lists(cand, dtype="int64"),
        "seen": Ragged.from_lists(seen, dtype="int64"),
    })


class UserCandidates(Operator):
    """Test retrieval for a scalar-only request: user ``u`` gets the ``u % k + 1`` candidates
    ``u*10 .. u*10 + u % k`` (a list column of varying length, possibly empty for ``u < 0``),
    their scores ``candidate / 10`` (float32), and ``best`` (its first candidate, or -1)."""

    type_name = "testing.UserCandidates"

    def __init__(self, k: int = 3) -> None:
        self.k = int(k)

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        self.require(input_schema, ["user_id"], dtype_kinds="iu", list_column=False)
        return Schema([
            ColumnSchema("candidates", "int64", dims=(None,)),
            ColumnSchema("scores", "float32", dims=(None,)),
            ColumnSchema("best", "int64"),
        ])

    def transform(self, table: Table) -> Table:
        users = np.asarray(table["user_id"]).astype(np.int64)
        lists = [[] if u < 0 else [u * 10 + j for j in range(u % self.k + 1)] for u in users.tolist()]
        cands = Ragged.from_lists(lists, dtype="int64")
        return Table({
            "candidates": cands,
            "scores": Ragged(cands.values.astype(np.float32) / np.float32(10), cands.offsets, validate=False),
            "best": np.array([r[0] if r else -1 for r in lists], dtype=np.int64),
        })

    def to_config(self) -> dict[str, Any]:
        return {"k": self.k}


def rows_ensemble(k: int = 3) -> Ensemble:
    """A graph whose request is scalars only (``user_id``): exported in the rows wire form."""
    return Ensemble(["user_id"] >> UserCandidates(k), Schema([ColumnSchema("user_id", "int64")]))


# -- serving helpers the test suites share ------------------------------------------------
def combined_repository(target: Path, exports: Mapping[str, Callable[[Path], Path]]) -> Path:
    """One model repository holding several exports: ``exports`` maps a scratch directory name
    to a function exporting into that directory (e.g. ``lambda d: ens.export(d, name="m")``);
    their model directories are copied into ``target`` (first one wins on a name clash)."""
    target.mkdir(parents=True)
    for scratch, export in exports.items():
        for model in Path(export(target.parent / scratch)).iterdir():
            if model.is_dir() and not (target / model.name).exists():
                shutil.copytree(model, target / model.name)
    return target


def infer_concurrently(http_url: str, tables: Sequence[Table], model: str, threads: int = 8) -> list[Table]:
    """Send ``tables`` to ``model`` from ``threads`` threads, one HTTP client per thread
    (tritonclient's HTTP client runs on gevent and is not thread-safe); answers in order."""
    import tritonclient.http as httpclient  # noqa: PLC0415 - only the serving tests need it

    from funnel_triton.client import infer  # noqa: PLC0415

    local = threading.local()
    clients: list[Any] = []

    def call(table: Table) -> Table:
        if not hasattr(local, "client"):
            local.client = httpclient.InferenceServerClient(http_url)
            clients.append(local.client)
        return infer(local.client, table, model=model)

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(call, tables))
    finally:
        for client in clients:
            client.close()


def request_counts(server: Any, model: str) -> tuple[int, int]:
    """(requests answered successfully, execute() calls) of ``model``, from Triton's statistics."""
    stats = server.client("http").get_inference_statistics(model)["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"]), int(stats["execution_count"])


@contextlib.contextmanager
def loopback_server(argv: Callable[[int], list[str]], timeout: float = 30.0) -> Iterator[str]:
    """Start ``argv(port)`` (a server binding 127.0.0.1 on a free port), wait until the port
    accepts connections, yield ``"127.0.0.1:<port>"``, and stop that process afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{argv(port)[0]} did not start on port {port}") from None
            time.sleep(0.1)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def has_cuda_gpu() -> bool:
    """True on a machine with an NVIDIA GPU that cupy can use (the GPU tests' skip condition)."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        import cupy  # noqa: PLC0415 - only GPU machines have it

        return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0 and \
            cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no driver, no cupy: no GPU test
        return False


@contextlib.contextmanager
def cli_with_commands(plugin: Any, names: Sequence[str]) -> Iterator[Any]:
    """``funnel.cli.cli`` with the commands ``plugin``'s register_commands hook adds (what ``funnel``
    does at start when the plugin is installed); ``names`` are put back as they were afterwards."""
    from funnel.cli import cli  # noqa: PLC0415

    before = {name: cli.commands.get(name) for name in names}
    plugin.register_commands(cli=cli)
    try:
        yield cli
    finally:
        for name, command in before.items():
            if command is None:
                cli.commands.pop(name, None)
            else:
                cli.commands[name] = command


@hookimpl
def register_operators(register: Any) -> None:
    """The test operators, as the plugin ``testing``."""
    for op in (LinearScore, TopByScore, RaiseOnValue, UserCandidates):
        register(op)
