"""Benchmark the multi-stage demo pipeline: hand-written floor, funnel in-process, Triton.

Every variant runs in one process invocation over the same data, models, feature store
and request ids (examples/multistage):

- ``floor``: the same steps hand-written with direct Feast / TensorFlow / FAISS / numpy
  calls and no funnel (what a perfect framework would cost);
- ``in-process``: ``Ensemble.transform``;
- ``executor``: the graph exported with ``mode="executor"`` and served by the embedded
  Triton server, HTTP and gRPC, dynamic batching on and off;
- ``ensemble``: ``mode="ensemble"`` (one Python-backend model per operator).

Users per request 1/16/64 (sequential), and concurrency 1/4/8/16 with 1 user per
request (closed loop, one tritonclient per thread, inputs built before timing). Reports
p50/p95/p99 latency (ms) and users/s, and each variant's ratio to the floor. ``gc.freeze()``
is called after loading, in the floor and in funnel alike (the served models do it at load).

    .venv/bin/python benchmarks/multistage.py            # full run (~10 min on 2 cores)
    .venv/bin/python benchmarks/multistage.py --quick    # smaller counts (~3 min)
    .venv/bin/python benchmarks/multistage.py --profile  # cProfile of in-process vs floor

Writes ``benchmarks/results/<date>-<machine>.md`` / ``.json`` / ``.png``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import io
import itertools
import json
import os
import platform
import pstats
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# FAISS's OpenMP pool spins on a busy 2-core machine (a 1-query flat search took 17 ms
# instead of 0.07 ms): one thread for the floor, in-process and the served models alike
# (the Triton server inherits this environment). Set OMP_NUM_THREADS to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = Path(__file__).resolve().parent / "results"
USER_COUNTS = (1, 16, 64)
CONCURRENCY = (1, 4, 8, 16)


# -- measurements -----------------------------------------------------------------------------
@dataclass
class Cell:
    """One measured configuration."""

    variant: str
    protocol: str
    users_per_request: int
    concurrency: int
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    users_per_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.variant}/{self.protocol}/u{self.users_per_request}/c{self.concurrency}"


def _cell(variant: str, protocol: str, users: int, conc: int, lat_s: Sequence[float], wall_s: float) -> Cell:
    lat = np.asarray(lat_s) * 1e3
    return Cell(
        variant=variant,
        protocol=protocol,
        users_per_request=users,
        concurrency=conc,
        requests=int(lat.size),
        p50_ms=float(np.percentile(lat, 50)),
        p95_ms=float(np.percentile(lat, 95)),
        p99_ms=float(np.percentile(lat, 99)),
        mean_ms=float(lat.mean()),
        users_per_s=float(lat.size * users / wall_s),
    )


def run_sequential(fn: Callable[[Any], Any], requests: Sequence[Any], warmup: int) -> tuple[list[float], float]:
    """Call ``fn`` on each request in turn; returns per-call latencies (s) and the wall time."""
    for req in requests[:warmup]:
        fn(req)
    lat = []
    t0 = time.perf_counter()
    for req in requests[warmup:]:
        s = time.perf_counter()
        fn(req)
        lat.append(time.perf_counter() - s)
    return lat, time.perf_counter() - t0


def run_interleaved(
    fns: dict[str, Callable[[Any], Any]], requests: Sequence[Any], warmup: int, after_warmup: Callable[[], Any] | None = None
) -> dict[str, list[float]]:
    """Each request through every function in turn (order alternating per request).

    Both paths see the same background load at the same moment, which matters on a shared
    machine: the ratio of their latencies is far steadier than two back-to-back runs.
    """
    names = list(fns)
    for req in requests[:warmup]:
        for n in names:
            fns[n](req)
    if after_warmup is not None:
        after_warmup()
    lat: dict[str, list[float]] = {n: [] for n in names}
    for i, req in enumerate(requests[warmup:]):
        for n in names if i % 2 == 0 else names[::-1]:
            s = time.perf_counter()
            fns[n](req)
            lat[n].append(time.perf_counter() - s)
    return lat


def run_concurrent(
    make_worker: Callable[[], Callable[[Any], Any]], requests: Sequence[Any], concurrency: int, warmup: int
) -> tuple[list[float], float]:
    """Closed loop: ``concurrency`` threads, each with its own worker (client), share the requests.

    Each worker is made and warmed up in its own thread (tritonclient's HTTP client runs on
    gevent, whose sockets belong to the thread that created them).
    """
    timed = list(requests[warmup:])
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(concurrency + 1)

    def loop(i: int) -> None:
        try:
            w = make_worker()
            for req in requests[: max(1, warmup // concurrency)]:
                w(req)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
            w = None
        barrier.wait()
        if w is None:
            return
        try:
            for req in timed[i::concurrency]:
                s = time.perf_counter()
                w(req)
                lat[i].append(time.perf_counter() - s)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return [x for part in lat for x in part], wall


# -- the hand-written floor ------------------------------------------------------------------
class Floor:
    """The pipeline written directly against Feast, TensorFlow, FAISS and numpy (no funnel).

    Same steps, same data and models as the demo graph: user lookup → query tower →
    FAISS top-k → drop already-seen items → one deduplicated item lookup for the whole
    batch → repeat user features per candidate → ranking model → softmax (Gumbel-top-k)
    sampling. ``timings`` collects per-step seconds when ``self.trace`` is True.
    """

    def __init__(
        self, art: Any, store: Any = None, retrieval_k: int = 100, topk: int = 10, temperature: float | None = None
    ) -> None:
        import faiss  # noqa: PLC0415
        import tensorflow as tf  # noqa: PLC0415
        from feast import FeatureStore  # noqa: PLC0415

        from examples.multistage.features import ITEM_VIEW, USER_VIEW  # noqa: PLC0415
        from examples.multistage.models import USER_FEATURES  # noqa: PLC0415
        from examples.multistage.pipeline import DEFAULT_TEMPERATURE  # noqa: PLC0415
        from examples.multistage.prepare import RANKER_COLUMNS  # noqa: PLC0415

        # Feast 0.67 caches request resolution per process for ONE registry at a time: a
        # second FeatureStore object in the process would evict it on every call. A
        # hand-written service has one store; here it is the one funnel's ops also use.
        self.store = store if store is not None else FeatureStore(repo_path=str(art.feature_repo))
        self.user_feats = [f for f in USER_FEATURES if f != "user_id"]
        self.user_refs = [f"{USER_VIEW}:{f}" for f in (*self.user_feats, "seen_item_ids")]
        self.item_feats = ["year", "genres", "popularity"]
        self.item_refs = [f"{ITEM_VIEW}:{f}" for f in self.item_feats]
        self.query_fn = tf.saved_model.load(str(art.query_tower)).signatures["serving_default"]
        self.rank_fn = tf.saved_model.load(str(art.ranker)).signatures["serving_default"]
        self.query_inputs = self._input_shapes(self.query_fn)
        self.rank_inputs = self._input_shapes(self.rank_fn)
        self.index = faiss.read_index(str(art.index))
        self.k, self.topk = retrieval_k, topk
        self.temperature = DEFAULT_TEMPERATURE if temperature is None else temperature
        self.rng = np.random.default_rng(0)
        self.ranker_columns = RANKER_COLUMNS
        self.trace = False
        self.timings: dict[str, list[float]] = {}

    @staticmethod
    def _input_shapes(fn: Any) -> dict[str, tuple[Any, Any]]:
        _, kwargs = fn.structured_input_signature
        return {k: (tuple(v.shape[1:]), v.dtype.as_numpy_dtype) for k, v in kwargs.items()}

    @staticmethod
    def _feed(arr: np.ndarray, spec: tuple[Any, Any]) -> np.ndarray:
        dims, dtype = spec
        arr = arr.astype(dtype, copy=False)
        return arr[:, None] if dims == (1,) else arr

    def _mark(self, step: str, t0: float) -> float:
        t = time.perf_counter()
        if self.trace:
            self.timings.setdefault(step, []).append(t - t0)
        return t

    def __call__(self, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = time.perf_counter()
        b = user_ids.shape[0]
        resp = self.store.get_online_features(features=self.user_refs, entity_rows={"user_id": user_ids.tolist()}).to_dict()
        users = {"user_id": user_ids}
        for f in self.user_feats:
            users[f] = np.array([0 if v is None else v for v in resp[f]], dtype=np.int64)
        seen_rows = [() if v is None else v for v in resp["seen_item_ids"]]
        seen_len = np.fromiter((len(r) for r in seen_rows), dtype=np.int64, count=b)
        seen = np.fromiter(itertools.chain.from_iterable(seen_rows), dtype=np.int64, count=int(seen_len.sum()))
        t = self._mark("user lookup", t)
        q = self.query_fn(**{k: self._feed(users[k], s) for k, s in self.query_inputs.items()})
        q = next(iter(q.values())).numpy().astype(np.float32, copy=False)
        t = self._mark("query tower", t)
        _, cand = self.index.search(np.ascontiguousarray(q), self.k)
        t = self._mark("faiss", t)
        # the fastest known way: one boolean lookup table (request row × item id) for the
        # whole batch, the same trick funnel's FilterCandidates uses, no per-row loop
        span = max(int(cand.max(initial=0)), int(seen.max(initial=0))) + 1
        table = np.ones((b, span), dtype=bool)
        table[np.repeat(np.arange(b), seen_len), seen] = False
        valid = cand >= 0
        keep = valid & table[np.arange(b)[:, None], np.where(valid, cand, 0)]
        flat = cand[keep]
        lengths = np.count_nonzero(keep, axis=1).astype(np.int64)
        t = self._mark("filter seen", t)
        if b == 1:  # one user's candidates are distinct: nothing to deduplicate or scatter
            unique, inverse = flat, slice(None)
        else:
            unique, inverse = np.unique(flat, return_inverse=True)
        resp = self.store.get_online_features(features=self.item_refs, entity_rows={"item_id": unique.tolist()}).to_dict()
        items = {
            "item_id": flat,
            "item_year": np.array([0 if v is None else v for v in resp["year"]], dtype=np.int64)[inverse],
            "item_genres": np.array([0 if v is None else v for v in resp["genres"]], dtype=np.int64)[inverse],
            "item_popularity": np.array([0.0 if v is None else v for v in resp["popularity"]], dtype=np.float32)[inverse],
        }
        t = self._mark("item lookup", t)
        feats = dict(items)
        for f in ("user_id", *self.user_feats):
            feats[f] = np.repeat(users[f], lengths)
        t = self._mark("unroll", t)
        out = self.rank_fn(**{k: self._feed(feats[k], s) for k, s in self.rank_inputs.items()})
        scores = next(iter(out.values())).numpy().reshape(-1).astype(np.float64)
        t = self._mark("ranking", t)
        width = int(lengths.max(initial=0))
        keys = np.full((b, width), -np.inf)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        rix = np.repeat(np.arange(b), lengths)
        cix = np.arange(flat.size) - np.repeat(offsets[:-1], lengths)
        keys[rix, cix] = scores / self.temperature + self.rng.gumbel(size=scores.size)
        order = np.argsort(-keys, axis=1)[:, : self.topk]
        valid = order < lengths[:, None]  # rows with fewer than topk candidates are padded
        src = np.minimum(offsets[:-1, None] + order, max(flat.size - 1, 0))
        ids = np.where(valid, flat[src], -1)
        sc = np.where(valid, scores[src], np.nan).astype(np.float32)
        self._mark("sampling", t)
        return ids, sc


# -- Triton load generation -------------------------------------------------------------------
def _triton_worker(url: str, protocol: str, model: str, outputs: list[str]) -> Callable[[Any], Any]:
    if protocol == "http":
        import tritonclient.http as mod  # noqa: PLC0415

        client = mod.InferenceServerClient(url, concurrency=1)
    else:
        import tritonclient.grpc as mod  # noqa: PLC0415

        client = mod.InferenceServerClient(url)
    outs = [mod.InferRequestedOutput(n, binary_data=True) if protocol == "http" else mod.InferRequestedOutput(n) for n in outputs]

    def call(inputs: dict[str, list[Any]]) -> Any:
        res = client.infer(model, inputs[protocol], outputs=outs)
        return res.as_numpy(outputs[0])

    return call


def _triton_inputs(user_ids: np.ndarray, rows_form: bool = True) -> dict[str, list[Any]]:
    """Pre-built InferInput objects for both protocols: the rows wire form ([rows, 1]) of
    scalar-only executor exports, or the table form ([1, rows]) ensemble mode keeps (docs/serving.md)."""
    import tritonclient.grpc as grpc  # noqa: PLC0415
    import tritonclient.http as http  # noqa: PLC0415

    ids = user_ids.astype(np.int64)
    arr = np.ascontiguousarray(ids[:, None] if rows_form else ids[None, :])
    out = {}
    for name, mod in (("http", http), ("grpc", grpc)):
        inp = mod.InferInput("user_id", list(arr.shape), "INT64")
        inp.set_data_from_numpy(arr)
        out[name] = [inp]
    return out


# -- the run ----------------------------------------------------------------------------------
def _load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _requests(pool: np.ndarray, users: int, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.choice(pool, size=users, replace=False) for _ in range(n)]


def _count(users: int, quick: bool, scale: float) -> int:
    base = {1: 400, 16: 120, 64: 50}.get(users, 50)
    return max(10, int(base * scale * (0.3 if quick else 1.0)))


def node_breakdown(ens: Any, requests: Sequence[np.ndarray]) -> dict[str, float]:
    """p50 ms of every operator node of ``ens`` over ``requests`` (select nodes summed)."""
    from funnel.table import Table  # noqa: PLC0415

    executor = ens._executor
    times: dict[str, list[float]] = {}
    run = executor._run_node

    def timed(bound: Any, *rest: Any) -> Any:
        t = time.perf_counter()
        out = run(bound, *rest)
        key = f"{bound.index} {bound.node.label}" if bound.node.kind == "op" else "select/concat nodes"
        times.setdefault(key, []).append(time.perf_counter() - t)
        return out

    executor._run_node = timed
    try:
        for r in requests:
            n0 = {k: len(v) for k, v in times.items()}
            ens.transform(Table({"user_id": r}))
            sel = times.get("select/concat nodes", [])
            extra = len(sel) - n0.get("select/concat nodes", 0)
            if extra > 1:  # one number per request for the select nodes
                sel[len(sel) - extra :] = [sum(sel[len(sel) - extra :])]
    finally:
        del executor._run_node
    return {k: round(1e3 * statistics.median(v), 3) for k, v in times.items()}


def profile_inprocess(ens: Any, floor: Floor, reqs: list[np.ndarray], top: int = 25) -> str:
    """cProfile both paths over the same requests; returns the two reports."""
    from funnel.table import Table  # noqa: PLC0415

    text = []
    for name, fn in (("floor", floor), ("in-process", lambda r: ens.transform(Table({"user_id": r})))):
        prof = cProfile.Profile()
        prof.enable()
        for r in reqs:
            fn(r)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
        text.append(f"===== {name} =====\n{buf.getvalue()}")
    return "\n".join(text)


PROFILE_SHIM = '''"""benchmarks/multistage.py --profile-served: the executor model under cProfile."""

import cProfile
import os
import time

from funnel.triton.runtime import ExecutorModel


class TritonPythonModel(ExecutorModel):
    def initialize(self, args):
        super().initialize(args)
        self._prof = cProfile.Profile()
        self._on = os.environ.get("FUNNEL_BENCH_CPROFILE") == "1"
        self._times = []
        self._parts = {}
        for name in ("_decode", "_run", "_respond"):
            setattr(self, name, self._timed(name, getattr(self, name)))

    def _timed(self, name, fn):
        log = self._parts.setdefault(name, [])

        def call(*a):
            t = time.perf_counter()
            out = fn(*a)
            log.append(time.perf_counter() - t)
            return out

        return call

    def execute(self, requests):
        t = time.perf_counter()
        if self._on:
            self._prof.enable()
        try:
            return super().execute(requests)
        finally:
            self._prof.disable()
            self._times.append(time.perf_counter() - t)
            if len(self._times) % 25 == 0:  # finalize() is not reliably called at shutdown
                out = os.environ["FUNNEL_BENCH_PROFILE"]
                self._prof.dump_stats(out + ".prof")
                with open(out + ".times", "w") as f:
                    f.write("\\n".join(str(x) for x in self._times))
                with open(out + ".parts", "w") as f:
                    try:
                        f.write(" ".join(f"{k}={1e3 * sorted(v)[len(v) // 2]:.3f}ms" for k, v in self._parts.items()))
                    except Exception as exc:
                        f.write(repr(exc))
'''


def profile_served(ens: Any, reqs: dict[int, list[np.ndarray]], users: int = 1, top: int = 30, cprofile: bool = False) -> str:
    """Serve the executor model with a cProfile shim; time execute() inside the server and
    the round trip at the client. Returns a report."""
    from funnel.table import Table  # noqa: PLC0415
    from funnel_triton import TritonServer  # noqa: PLC0415

    outputs = [c.name for c in ens.output_schema]
    with tempfile.TemporaryDirectory(prefix="funnel-bench-prof-") as tmp:
        repo = ens.export(Path(tmp) / "repo", max_batch_size=64)
        (repo / "funnel" / "1" / "model.py").write_text(PROFILE_SHIM)
        stem = str(Path(tmp) / "served")
        inputs = [_triton_inputs(r) for r in reqs[users]]
        with TritonServer(repo, timeout=300, env={"FUNNEL_BENCH_PROFILE": stem, "FUNNEL_BENCH_CPROFILE": str(int(cprofile))}) as server:
            call = _triton_worker(server.http_url, "http", "funnel", outputs)
            warm = 10
            lat_http, lat_local = [], []
            for i, (inp, r) in enumerate(zip(inputs, reqs[users], strict=True)):
                s = time.perf_counter()
                call(inp)
                t = time.perf_counter()
                ens.transform(Table({"user_id": r}))
                e = time.perf_counter()
                if i >= warm:
                    lat_http.append(t - s)
                    lat_local.append(e - t)
        times = np.array([float(x) for x in Path(stem + ".times").read_text().split()])[warm:] * 1e3
        parts = Path(stem + ".parts").read_text()
        buf = io.StringIO()
        if cprofile:
            pstats.Stats(stem + ".prof", stream=buf).sort_stats("tottime").print_stats(top)
    return (
        f"{users} user(s)/request, {len(lat_http)} requests: client HTTP p50 {1e3 * np.median(lat_http):.2f} ms, "
        f"server execute() p50 {np.median(times):.2f} ms ({parts}), "
        f"in-process transform p50 {1e3 * np.median(lat_local):.2f} ms\n"
        + buf.getvalue()
    )


TIMING_SHIM = '''"""benchmarks/multistage.py: the exported executor model, with execute() timed.

Identical to the exported model except for two perf_counter() calls around execute() and
around the graph run, and one 96-byte pwrite of the running totals per execute() call.
"""

import os
import time

from funnel.triton.runtime import ExecutorModel


class TritonPythonModel(ExecutorModel):
    def initialize(self, args):
        super().initialize(args)
        path = os.environ["FUNNEL_BENCH_TIMES"] + "." + args["model_instance_name"].replace("/", "_")
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        self._calls = self._requests = 0
        self._execute_s = self._run_s = 0.0
        run = self._run

        def timed_run(table):
            t = time.perf_counter()
            try:
                return run(table)
            finally:
                self._run_s += time.perf_counter() - t

        self._run = timed_run

    def execute(self, requests):
        t = time.perf_counter()
        try:
            return super().execute(requests)
        finally:
            self._execute_s += time.perf_counter() - t
            self._calls += 1
            self._requests += len(requests)
            line = f"{self._calls} {self._requests} {self._execute_s:.9f} {self._run_s:.9f}"
            os.pwrite(self._fd, line.ljust(95).encode() + b"\\n", 0)
'''


def _read_shim_totals(stem: str) -> dict[str, float]:
    """Sum of the timing shim's running totals over every model instance."""
    tot = {"calls": 0.0, "requests": 0.0, "execute_s": 0.0, "run_s": 0.0}
    for path in Path(stem).parent.glob(Path(stem).name + ".*"):
        parts = path.read_text().split()
        if len(parts) == 4:
            for k, v in zip(tot, parts, strict=True):
                tot[k] += float(v)
    return tot


def _triton_totals(url: str, model: str) -> dict[str, float]:
    """Cumulative server-side statistics of ``model`` (Triton's statistics extension), in seconds."""
    import tritonclient.http as http  # noqa: PLC0415

    client = http.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(model_name=model)
    finally:
        client.close()
    out = {"requests": 0.0, "executions": 0.0}
    for m in stats.get("model_stats", []):
        inf = m.get("inference_stats", {})
        out["requests"] += float(inf.get("success", {}).get("count", 0))
        out["executions"] += float(m.get("execution_count", 0))
        for part in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
            out[part + "_s"] = out.get(part + "_s", 0.0) + float(inf.get(part, {}).get("ns", 0)) / 1e9
    return out


def server_breakdown(before: dict[str, float], after: dict[str, float], shim0: dict[str, float] | None,
                     shim1: dict[str, float] | None, client_mean_ms: float, local_mean_ms: float) -> dict[str, float]:
    """Mean ms per request of each part of a served request, from cumulative totals taken
    before and after a cell (Triton statistics: means only, no percentiles)."""
    n = after["requests"] - before["requests"]
    if n <= 0:
        return {}
    per = {k: 1e3 * (after[k] - before.get(k, 0.0)) / n for k in after if k.endswith("_s")}
    out = {
        "client_round_trip_mean_ms": client_mean_ms,
        "server_request_mean_ms": per["success_s"],  # Triton: request received → response sent
        "queue_mean_ms": per["queue_s"],
        "compute_input_mean_ms": per["compute_input_s"],
        "compute_infer_mean_ms": per["compute_infer_s"],
        "compute_output_mean_ms": per["compute_output_s"],
        "executions_per_request": (after["executions"] - before["executions"]) / n,
        "in_process_mean_ms": local_mean_ms,
    }
    if shim0 is not None and shim1 is not None and shim1["requests"] > shim0["requests"]:
        calls = shim1["requests"] - shim0["requests"]
        out["execute_mean_ms"] = 1e3 * (shim1["execute_s"] - shim0["execute_s"]) / calls
        out["graph_run_mean_ms"] = 1e3 * (shim1["run_s"] - shim0["run_s"]) / calls
        # what each layer adds (means): client + HTTP/gRPC + frontend, the Python backend's
        # IPC to the stub process, funnel's decode/validate/encode around the graph run
        out["protocol_and_client_ms"] = client_mean_ms - out["server_request_mean_ms"]
        out["python_backend_ipc_ms"] = out["compute_infer_mean_ms"] - out["execute_mean_ms"]
        out["funnel_execute_overhead_ms"] = out["execute_mean_ms"] - out["graph_run_mean_ms"]
    return {k: round(v, 4) for k, v in out.items()}


def merge_repeats(cells: list[Cell]) -> Cell:
    """One cell from the repeats of one configuration: median of the per-repeat statistics,
    the spread of the per-repeat p50s kept in ``extra``."""
    if len(cells) == 1:
        c = cells[0]
        c.extra.setdefault("repeats", 1)
        c.extra.setdefault("p50_per_repeat_ms", [round(c.p50_ms, 4)])
        return c
    med = lambda xs: float(statistics.median(xs))  # noqa: E731
    first = cells[0]
    extra: dict[str, Any] = {"repeats": len(cells), "p50_per_repeat_ms": [round(c.p50_ms, 4) for c in cells]}
    for k in first.extra:
        vals = [c.extra[k] for c in cells if k in c.extra]
        if all(isinstance(v, (int, float)) for v in vals):
            extra[k] = round(med(vals), 4)
        elif all(isinstance(v, dict) for v in vals):
            keys = {kk for v in vals for kk in v}
            extra[k] = {kk: round(med([v[kk] for v in vals if kk in v]), 4) for kk in sorted(keys)}
        else:
            extra[k] = vals[-1]
    return Cell(
        variant=first.variant, protocol=first.protocol, users_per_request=first.users_per_request,
        concurrency=first.concurrency, requests=sum(c.requests for c in cells),
        p50_ms=med([c.p50_ms for c in cells]), p95_ms=med([c.p95_ms for c in cells]),
        p99_ms=med([c.p99_ms for c in cells]), mean_ms=med([c.mean_ms for c in cells]),
        users_per_s=med([c.users_per_s for c in cells]), extra=extra,
    )


#: --smoke data sizes = tests/test_dask.py's and scaling.py --smoke's: a test session prepares them once
SMOKE = {"num_users": 120, "num_items": 300, "epochs": 1}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.environ.get("FUNNEL_BENCH_WORKDIR", str(Path(tempfile.gettempdir()) / "funnel-multistage")))
    parser.add_argument("--quick", action="store_true", help="fewer requests per cell (~3 min); results say so")
    parser.add_argument("--smoke", action="store_true",
                        help=f"seconds-long check that every path runs: a tiny data set ({SMOKE}), a few requests, "
                             "executor over HTTP only; results go to --out or a temporary directory, never benchmarks/results")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply request counts")
    parser.add_argument("--repeats", type=int, default=3, help="measure every cell this many times (median of medians, spread)")
    parser.add_argument("--skip-triton", action="store_true", help="floor and in-process only")
    parser.add_argument("--variants", default="executor,executor-nobatch,ensemble",
                        help="Triton variants to run (also: executor-gpu, on a machine with a GPU and cupy)")
    parser.add_argument("--profile", action="store_true", help="print cProfile of floor vs in-process and exit")
    parser.add_argument("--profile-served", type=int, default=0, metavar="USERS", help="cProfile the served executor model at USERS users/request and exit")
    parser.add_argument("--out", default=None, help="results file stem (default results/<date>-<machine>)")
    parser.add_argument("--item-cache", type=int, default=0, help="QueryFeast item cache size of the main funnel graph (0 = off, like the floor)")
    parser.add_argument("--cache-size", type=int, default=4096, help="item cache size of the in-process+item-cache variant")
    parser.add_argument("--peers", default="", help="comma-separated peers measured in the same run: merlin "
                        "(needs .venv-merlin: bash benchmarks/peers/merlin/setup.sh)")
    args = parser.parse_args(argv)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if set(peers) - {"merlin"}:
        parser.error(f"unknown --peers {sorted(set(peers) - {'merlin'})}; known: merlin")
    if args.repeats < 1:
        parser.error("--repeats must be ≥ 1")
    smoke_tmp = None
    if args.smoke:
        smoke_tmp = tempfile.TemporaryDirectory(prefix="funnel-bench-smoke-")
        if "--workdir" not in (argv if argv is not None else sys.argv[1:]) and "FUNNEL_BENCH_WORKDIR" not in os.environ:
            args.workdir = str(Path(smoke_tmp.name) / "work")
        args.out = args.out or str(Path(smoke_tmp.name) / "smoke")
        args.repeats = 1
        if "--variants" not in (argv if argv is not None else sys.argv[1:]):
            args.variants = "executor"
        args.cache_size = 64

    load_before = _load_avg()
    started = time.time()
    from funnel.table import Table  # noqa: PLC0415

    from examples.multistage.pipeline import build_ensemble  # noqa: PLC0415
    from examples.multistage.prepare import prepare  # noqa: PLC0415

    art = prepare(args.workdir, log=lambda m: print(m, flush=True), **(SMOKE if args.smoke else {}))
    import pandas as pd  # noqa: PLC0415

    from examples.multistage.features import USER_VIEW  # noqa: PLC0415

    # build_feature_repo writes one parquet source per feature view, named after the view
    users_file = art.feature_repo / "data" / f"{USER_VIEW}.parquet"
    if not users_file.is_file():
        raise SystemExit(f"multistage benchmark: {users_file} not found; the work directory {args.workdir} "
                         "is incomplete: pass a new --workdir (or delete this one) to rebuild it")
    pool = pd.read_parquet(users_file, columns=["user_id"]).user_id.to_numpy().astype(np.int64)
    ens = build_ensemble(art, item_cache_size=args.item_cache)
    feast_ops = [b.node.op for b in ens.graph.op_nodes if type(b.node.op).__name__ == "QueryFeast"]
    floor = Floor(art, store=feast_ops[0].store if feast_ops else None)
    cached = build_ensemble(art, item_cache_size=args.cache_size)
    counts = {u: (4 if u == 1 else 3) if args.smoke else _count(u, args.quick, args.scale) for u in USER_COUNTS}
    reqs = {u: _requests(pool, u, counts[u], seed=u) for u in USER_COUNTS}
    inproc = lambda r: ens.transform(Table({"user_id": r}))  # noqa: E731
    inproc_cached = lambda r: cached.transform(Table({"user_id": r}))  # noqa: E731
    for u in USER_COUNTS:  # first calls trace TF functions, open sqlite
        floor(reqs[u][0])
        inproc(reqs[u][0])
        inproc_cached(reqs[u][0])  # a cold cache: it fills from the requests themselves
    gc.collect()
    gc.freeze()

    if args.profile:
        print(profile_inprocess(ens, floor, reqs[1][:200]))
        return 0
    if args.profile_served:
        print(profile_served(ens, reqs, users=args.profile_served))  # timing only
        print(profile_served(ens, reqs, users=args.profile_served, cprofile=True))
        return 0

    cells: list[Cell] = []

    stem = Path(args.out) if args.out else RESULTS / f"{dt.date.today().isoformat()}-{socket.gethostname()}"
    partial = stem.parent / f"{stem.name}.partial.json"

    def record(cell: Cell) -> None:
        cells.append(cell)
        # a long run that dies keeps what it measured (the final write removes this file)
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({"cells": [asdict(c) | {"key": c.key} for c in cells]}, indent=1) + "\n")
        spread = cell.extra.get("p50_per_repeat_ms", [])
        print(
            f"  {cell.key:38s} p50 {cell.p50_ms:8.2f}  p95 {cell.p95_ms:8.2f}  p99 {cell.p99_ms:8.2f} ms  "
            f"{cell.users_per_s:9.1f} users/s  (n={cell.requests}"
            + (f", p50 per repeat {spread}" if len(spread) > 1 else "") + ")",
            flush=True,
        )

    print(f"[bench] floor and in-process, sequential, interleaved request by request, {args.repeats} repeat(s)", flush=True)
    cache_stats: dict[str, Any] = {}
    item_cache = next((b.node.op._cache for b in cached.graph.op_nodes if getattr(b.node.op, "_cache", None) is not None), None)
    for u in USER_COUNTS:
        fns = {"floor": floor, "in-process": inproc, "in-process+item-cache": inproc_cached}
        runs: dict[str, list[Cell]] = {n: [] for n in fns}
        h0, m0 = (item_cache.hits, item_cache.misses) if item_cache is not None else (0, 0)
        for _ in range(args.repeats):
            lats = run_interleaved(fns, reqs[u], max(1 if args.smoke else 3, len(reqs[u]) // 10))
            for name, lat in lats.items():
                runs[name].append(_cell(name, "-", u, 1, lat, sum(lat)))
        for name, rs in runs.items():
            cell = merge_repeats(rs)
            if name == "in-process+item-cache" and item_cache is not None:
                hits, misses = item_cache.hits - h0, item_cache.misses - m0
                cell.extra["item_cache_hit_rate"] = round(hits / max(hits + misses, 1), 4)
                cell.extra["item_cache_size"] = item_cache.max_size
                cache_stats[f"u{u}"] = {"hits": hits, "misses": misses, "size": item_cache.max_size}
            record(cell)
    # per-step breakdown of the floor
    steps: dict[str, dict[str, float]] = {}
    for u in (1, 64):
        floor.timings.clear()
        floor.trace = True
        run_sequential(floor, reqs[u], 0)
        floor.trace = False
        steps[str(u)] = {k: round(1e3 * statistics.median(v), 3) for k, v in floor.timings.items()}

    nodes = {
        f"{name} u{u}": node_breakdown(e, reqs[u]) for name, e in (("in-process", ens), ("in-process+item-cache", cached)) for u in (1, 64)
    }
    triton_meta: dict[str, Any] = {"funnel_nodes_p50_ms": nodes}
    if not args.skip_triton:
        run_triton(ens, reqs, args, triton_meta, record)  # its cells reach `cells` through record()
    if "merlin" in peers:
        run_merlin(art, reqs, args, triton_meta, record)

    load_after = _load_avg()
    meta = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": socket.gethostname(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "duration_s": round(time.time() - started, 1),
        "quick": args.quick,
        "smoke": args.smoke,
        "repeats": args.repeats,
        "peers": peers,
        "data": {"num_users": art.num_users, "num_items": art.num_items, "epochs": art.epochs},
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "item_cache": args.item_cache,
        "item_cache_stats": cache_stats,
        "floor_steps_p50_ms": steps,
        "versions": _versions(),
        **triton_meta,
    }
    write_results(stem, cells, meta)
    partial.unlink(missing_ok=True)
    print(f"[bench] wrote {stem}.md / .json / .png", flush=True)
    if smoke_tmp is not None:
        smoke_tmp.cleanup()
    return 0


def run_triton(ens: Any, reqs: dict[int, list[np.ndarray]], args: Any, meta: dict[str, Any], record: Callable[[Cell], None]) -> None:
    """Export each Triton variant, serve it, and measure; every cell goes to ``record``."""
    from funnel.table import Table  # noqa: PLC0415
    from funnel_triton import TritonServer  # noqa: PLC0415

    def inproc(r: np.ndarray) -> Any:
        return ens.transform(Table({"user_id": r}))

    variants = {
        "executor": {"mode": "executor", "dynamic_batching": True},
        "executor-nobatch": {"mode": "executor", "dynamic_batching": False},
        "ensemble": {"mode": "ensemble", "dynamic_batching": True},
        # GPU machines: request tables become cupy arrays inside the served model
        "executor-gpu": {"mode": "executor", "dynamic_batching": True, "instance_kind": "gpu"},
    }
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in wanted if v not in variants]
    if unknown:
        raise SystemExit(f"multistage benchmark: unknown --variants {unknown}; choose from {sorted(variants)}")
    rows_inputs = {u: [_triton_inputs(r) for r in rs] for u, rs in reqs.items()}
    outputs = [c.name for c in ens.output_schema]
    n_conc = 16 if args.smoke else _count(1, args.quick, args.scale) * 2
    conc_reqs = _requests(np.concatenate(reqs[1]), 1, n_conc, seed=99)
    rows_conc_inputs = [_triton_inputs(r) for r in conc_reqs]
    concurrency = (4,) if args.smoke else CONCURRENCY
    with tempfile.TemporaryDirectory(prefix="funnel-bench-") as tmp:
        for name in wanted:
            opts = variants[name]
            inputs, conc_inputs = rows_inputs, rows_conc_inputs
            if opts["mode"] == "ensemble":
                opts = {**opts, "native_backends": False}  # the pip-installed server has no TF backend
                # ensemble mode keeps the table wire form: one request table per request
                inputs = {u: [_triton_inputs(r, rows_form=False) for r in rs] for u, rs in reqs.items()}
                conc_inputs = [_triton_inputs(r, rows_form=False) for r in conc_reqs]
            repo = ens.export(Path(tmp) / name, max_batch_size=64, **opts)
            shim = None
            if opts["mode"] == "executor":
                (repo / "funnel" / "1" / "model.py").write_text(TIMING_SHIM)
                shim = str(Path(tmp) / f"{name}.times")
            t0 = time.perf_counter()
            with TritonServer(repo, timeout=300, env={"FUNNEL_BENCH_TIMES": shim or "", "OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"]}) as server:
                meta[f"{name}_load_s"] = round(time.perf_counter() - t0, 1)
                print(f"[bench] {name}: server ready in {meta[f'{name}_load_s']} s", flush=True)
                protocols = ("http",) if args.smoke or name != "executor" else ("http", "grpc")
                for proto in protocols:
                    url = server.http_url if proto == "http" else server.grpc_url
                    mk = lambda url=url, proto=proto: _triton_worker(url, proto, "funnel", outputs)  # noqa: E731
                    if name != "executor-nobatch":
                        for u in USER_COUNTS:
                            # interleaved with in-process request by request: served − in-process
                            # is what serving adds, measured under the same background load
                            call = mk()
                            pairs = list(zip(inputs[u], reqs[u], strict=True))
                            runs = []
                            for _ in range(args.repeats):
                                before: dict[str, Any] = {}

                                def snapshot(before: dict[str, Any] = before, shim: str | None = shim, url: str = server.http_url) -> None:
                                    before["shim"] = _read_shim_totals(shim) if shim else None  # after the warm-up
                                    before["triton"] = _triton_totals(url, "funnel")

                                lats = run_interleaved(
                                    {"served": lambda p, call=call: call(p[0]), "local": lambda p: inproc(p[1])},
                                    pairs,
                                    max(1 if args.smoke else 3, len(pairs) // 10),
                                    after_warmup=snapshot,
                                )
                                s0, t0_ = before["shim"], before["triton"]
                                s1, t1_ = _read_shim_totals(shim) if shim else None, _triton_totals(server.http_url, "funnel")
                                cell = _cell(name, proto, u, 1, lats["served"], sum(lats["served"]))
                                local_p50 = float(np.percentile(lats["local"], 50) * 1e3)
                                cell.extra["paired_in_process_p50_ms"] = round(local_p50, 4)
                                cell.extra["served_minus_in_process_p50_ms"] = round(cell.p50_ms - local_p50, 4)
                                cell.extra["server_side"] = server_breakdown(
                                    t0_, t1_, s0, s1, cell.mean_ms, float(np.mean(lats["local"]) * 1e3)
                                )
                                runs.append(cell)
                            record(merge_repeats(runs))
                    if proto == "http":
                        for c in concurrency:
                            if c == 1 and name != "executor-nobatch":
                                continue
                            runs = []
                            for _ in range(args.repeats):
                                t0_ = _triton_totals(server.http_url, "funnel")
                                lat, wall = run_concurrent(mk, conc_inputs, c, warmup=max(8, 2 * c))
                                t1_ = _triton_totals(server.http_url, "funnel")
                                cell = _cell(name, proto, 1, c, lat, wall)
                                n = t1_["requests"] - t0_["requests"]
                                cell.extra["requests_per_execution"] = round(n / max(t1_["executions"] - t0_["executions"], 1), 3)
                                runs.append(cell)
                            record(merge_repeats(runs))


# -- peers: the same pipeline on the system users are leaving ------------------------------------
MERLIN_VENV = ROOT / ".venv-merlin"
MERLIN_SCRIPT = ROOT / "benchmarks" / "peers" / "merlin" / "merlin_pipeline.py"


def _merlin_inputs(user_ids: np.ndarray) -> dict[str, list[Any]]:
    """Merlin's executor model takes ``user_id`` as a [rows] INT64 tensor (no batch dimension)."""
    import tritonclient.grpc as grpc  # noqa: PLC0415
    import tritonclient.http as http  # noqa: PLC0415

    arr = np.ascontiguousarray(user_ids.astype(np.int64))
    out = {}
    for name, mod in (("http", http), ("grpc", grpc)):
        inp = mod.InferInput("user_id", list(arr.shape), "INT64")
        inp.set_data_from_numpy(arr)
        out[name] = [inp]
    return out


def _peer_subprocess(cmd: list[str], what: str, timeout: float) -> None:
    import subprocess  # noqa: PLC0415

    env = {**os.environ, "PYTHONNOUSERSITE": "1"}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"multistage benchmark: the Merlin peer failed to {what} (exit {proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def run_merlin(art: Any, reqs: dict[int, list[np.ndarray]], args: Any, meta: dict[str, Any], record: Callable[[Cell], None]) -> None:
    """Merlin Systems 23.08 on the same work directory and request sequence (1 user/request:
    the only size its graph serves): its hand-written floor and ``Ensemble.transform`` in its own
    virtualenv, then its executor model on the same embedded Triton, measured by this process."""
    from funnel_triton import TritonServer  # noqa: PLC0415

    py = MERLIN_VENV / "bin" / "python"
    if not py.is_file():
        raise SystemExit(f"multistage benchmark: --peers merlin needs {MERLIN_VENV}; build it with "
                         "`bash benchmarks/peers/merlin/setup.sh` (5-15 min)")
    info: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="funnel-bench-merlin-") as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        _peer_subprocess([str(py), str(MERLIN_SCRIPT), "build", "--workdir", str(art.workdir), "--out", str(out)],
                         "build its feature repository and export its graph", 900)
        build = json.loads((out / "build.json").read_text())
        info.update(build_s=round(time.perf_counter() - t0, 1), versions=build["versions"])
        requests = reqs[1]
        (out / "requests.json").write_text(json.dumps([r.tolist() for r in requests]))
        warm = max(1 if args.smoke else 3, len(requests) // 10)
        print(f"[bench] merlin: in-process (its own venv), {len(requests) - warm} requests × {args.repeats}", flush=True)
        _peer_subprocess([str(py), str(MERLIN_SCRIPT), "bench", "--workdir", str(art.workdir), "--out", str(out),
                          "--requests", str(out / "requests.json"), "--warmup", str(warm), "--repeats", str(args.repeats)],
                         "run in-process", 1800)
        local = json.loads((out / "inprocess.json").read_text())
        info["multi_user_in_process"] = local["multi_user"]
        for name in ("merlin-floor", "merlin-in-process"):
            runs = [_cell(name, "-", 1, 1, rep[name], sum(rep[name])) for rep in local["repeats"]]
            record(merge_repeats(runs))
        merlin_local_mean = float(np.mean([np.mean(rep["merlin-in-process"]) for rep in local["repeats"]]) * 1e3)
        inputs = [_merlin_inputs(r) for r in requests]
        outputs = build["outputs"]
        model = build["model"]
        env = {"PATH": f"{MERLIN_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               "OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"], "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
        t0 = time.perf_counter()
        with TritonServer(out / "repo", timeout=600, env=env) as server:
            info["server_load_s"] = round(time.perf_counter() - t0, 1)
            print(f"[bench] merlin: server ready in {info['server_load_s']} s", flush=True)
            for proto in ("http",) if args.smoke else ("http", "grpc"):
                url = server.http_url if proto == "http" else server.grpc_url
                runs = []
                for _ in range(args.repeats):
                    call = _triton_worker(url, proto, model, outputs)
                    for inp in inputs[:warm]:
                        call(inp)
                    t_0 = _triton_totals(server.http_url, model)
                    lat, wall = run_sequential(lambda p, call=call: call(p), inputs[warm:], 0)
                    t_1 = _triton_totals(server.http_url, model)
                    cell = _cell("merlin-executor", proto, 1, 1, lat, wall)
                    cell.extra["server_side"] = server_breakdown(t_0, t_1, None, None, cell.mean_ms, merlin_local_mean)
                    runs.append(cell)
                record(merge_repeats(runs))
            mk = lambda: _triton_worker(server.http_url, "http", model, outputs)  # noqa: E731
            n_conc = 16 if args.smoke else _count(1, args.quick, args.scale) * 2  # as funnel's concurrency cells
            conc_inputs = [_merlin_inputs(r) for r in _requests(np.concatenate(requests), 1, n_conc, seed=99)]
            for c in (4,) if args.smoke else (8,):
                runs = []
                for _ in range(args.repeats):
                    lat, wall = run_concurrent(mk, conc_inputs, c, warmup=max(8, 2 * c))
                    runs.append(_cell("merlin-executor", "http", 1, c, lat, wall))
                record(merge_repeats(runs))
            # a 4-user request: Merlin's graph is built around one user per request
            call = _triton_worker(server.http_url, "http", model, outputs)
            users = np.concatenate(requests[:4])
            try:
                ids = call(_merlin_inputs(users))
                info["multi_user_served"] = {"ok": True, "ordered_ids_shape": list(np.asarray(ids).shape)}
            except Exception as exc:  # noqa: BLE001 - the outcome is the result
                text = str(exc).strip().splitlines()
                info["multi_user_served"] = {"ok": False, "error": f"{type(exc).__name__}: " + " | ".join(text[-3:])[-500:]}
    meta["merlin"] = info


def _versions() -> dict[str, str]:
    import importlib.metadata as md  # noqa: PLC0415

    out = {}
    for d in ("funnel", "numpy", "tensorflow-cpu", "feast", "faiss-cpu", "tritonclient", "nvidia-pytriton"):
        try:
            out[d] = md.version(d)
        except md.PackageNotFoundError:
            pass
    return out


# -- reporting --------------------------------------------------------------------------------
def _find(cells: list[Cell], variant: str, protocol: str, users: int, conc: int = 1) -> Cell | None:
    return next(
        (c for c in cells if (c.variant, c.protocol, c.users_per_request, c.concurrency) == (variant, protocol, users, conc)),
        None,
    )


def headline(cells: list[Cell]) -> list[tuple[str, str, str]]:
    """(what, measured, target) rows quoted by the top-level README."""
    rows = []
    f1, i1 = _find(cells, "floor", "-", 1), _find(cells, "in-process", "-", 1)
    e1 = _find(cells, "executor", "http", 1)
    g1 = _find(cells, "executor", "grpc", 1)
    if f1 and i1:
        rows.append(("in-process p50 / floor p50 (1 user)", f"{i1.p50_ms / f1.p50_ms:.3f} ({i1.p50_ms:.2f} vs {f1.p50_ms:.2f} ms)", "≤ 1.05"))
        f64, i64 = _find(cells, "floor", "-", 64), _find(cells, "in-process", "-", 64)
        if f64 and i64:
            rows.append(("in-process p50 / floor p50 (64 users)", f"{i64.p50_ms / f64.p50_ms:.3f} ({i64.p50_ms:.1f} vs {f64.p50_ms:.1f} ms)", "≤ 1.05"))
    for cell, proto in ((e1, "HTTP"), (g1, "gRPC")):
        if cell and "paired_in_process_p50_ms" in cell.extra:
            local = cell.extra["paired_in_process_p50_ms"]
            diff = cell.extra.get("served_minus_in_process_p50_ms", cell.p50_ms - local)
            alone = f"; in-process alone {i1.p50_ms:.2f} ms" if i1 else ""
            rows.append(
                (f"executor {proto} p50 − in-process p50 (1 user; both interleaved request by request, same load)",
                 f"{diff:+.2f} ms ({cell.p50_ms:.2f} vs {local:.2f} ms{alone})", "≤ 1 ms")
            )
            side = cell.extra.get("server_side", {})
            if "execute_mean_ms" in side:
                rows.append((
                    f"executor {proto}, where a 1-user request's time goes (means, Triton statistics + timed execute())",
                    f"client+{proto} {side['protocol_and_client_ms']:.2f} · queue {side['queue_mean_ms']:.2f} · "
                    f"Python-backend IPC {side['python_backend_ipc_ms']:.2f} · funnel execute() around the graph "
                    f"{side['funnel_execute_overhead_ms']:.2f} · graph {side['graph_run_mean_ms']:.2f} ms",
                    "–",
                ))
    for variant, proto in (("in-process", "-"), ("in-process+item-cache", "-"), ("executor", "http"), ("floor", "-")):
        a, b = _find(cells, variant, proto, 64), _find(cells, variant, proto, 1)
        if a and b:
            rows.append((f"{variant} users/s, 64 vs 1 user/request", f"{a.users_per_s / b.users_per_s:.1f}× ({a.users_per_s:.0f} vs {b.users_per_s:.0f})", "≥ 20×"))
    e8, n8 = _find(cells, "executor", "http", 1, 8), _find(cells, "executor-nobatch", "http", 1, 8)
    if e8 and n8:
        rows.append(("executor users/s at concurrency 8, dynamic batching on / off", f"{e8.users_per_s:.0f} / {n8.users_per_s:.0f}", "Merlin: ~20"))
    mf, mi = _find(cells, "merlin-floor", "-", 1), _find(cells, "merlin-in-process", "-", 1)
    if mf and mi:
        rows.append(("Merlin 23.08 in-process p50 / its own floor p50 (1 user, same run)",
                     f"{mi.p50_ms / mf.p50_ms:.2f} ({mi.p50_ms:.2f} vs {mf.p50_ms:.2f} ms)", "issue: ~2.4"))
        if i1 and f1:
            rows.append(("in-process p50, Merlin / funnel (1 user, same run, same data/models/index/requests)",
                         f"{mi.p50_ms / i1.p50_ms:.2f} ({mi.p50_ms:.2f} vs {i1.p50_ms:.2f} ms)", "–"))
    for proto in ("http", "grpc"):
        me, fe = _find(cells, "merlin-executor", proto, 1), _find(cells, "executor", proto, 1)
        if me:
            rows.append((f"Merlin served p50, {proto.upper()} (1 user)" + (", vs funnel executor" if fe else ""),
                         f"{me.p50_ms:.2f} ms" + (f" vs {fe.p50_ms:.2f} ms ({me.p50_ms / fe.p50_ms:.2f}×)" if fe else ""),
                         "issue: ~38 ms" if proto == "http" else "–"))
    m8, f8 = _find(cells, "merlin-executor", "http", 1, 8), _find(cells, "executor", "http", 1, 8)
    if m8:
        rows.append(("users/s at concurrency 8 (HTTP, 1 user/request), Merlin" + (" vs funnel" if f8 else ""),
                     f"{m8.users_per_s:.0f}" + (f" vs {f8.users_per_s:.0f}" if f8 else ""), "issue: Merlin ~20"))
    ens1 = _find(cells, "ensemble", "http", 1)
    if ens1 and e1:
        rows.append(("ensemble-mode p50 / executor p50 (1 user, HTTP)", f"{ens1.p50_ms / e1.p50_ms:.2f} ({ens1.p50_ms:.2f} ms)", "–"))
    return rows


def write_results(stem: Path, cells: list[Cell], meta: dict[str, Any]) -> None:
    """Write ``stem``.json (raw), .md (tables) and .png (plots)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    floor = {c.users_per_request: c for c in cells if c.variant == "floor"}
    data = {"meta": meta, "headline": headline(cells), "cells": [asdict(c) | {"key": c.key} for c in cells]}
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        f"# Multi-stage pipeline benchmark — {meta['date']} on {meta['machine']}",
        "",
        f"{meta['cpus']} CPUs, {meta['platform']}, Python {meta['python']}; load average (1/5/15 min) "
        f"before {meta['load_avg_before']}, after {meta['load_avg_after']}; run took {meta['duration_s']} s"
        + (" (--quick)" if meta.get("quick") else "")
        + ". Versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + ".",
        "",
        "## Headline",
        "",
        "| what | measured | target |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in data["headline"]],
        "",
        "## All cells",
        "",
        f"Latency in ms; each cell measured {meta.get('repeats', 1)} time(s): the figures are the median of the "
        "per-repeat figures, `p50 spread` the lowest and highest per-repeat p50, `n` all timed requests. "
        "`× floor` = p50 / floor p50 with the same users per request. The machine is shared (see the load "
        "average): absolute figures are noisy, ratios within one run are what to compare.",
        "",
        "| variant | protocol | users/request | concurrency | n | p50 | p50 spread | p95 | p99 | users/s | × floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        f = floor.get(c.users_per_request)
        ratio = f"{c.p50_ms / f.p50_ms:.2f}" if f and c.concurrency == 1 else "–"
        rep = c.extra.get("p50_per_repeat_ms", [c.p50_ms])
        lines.append(
            f"| {c.variant} | {c.protocol} | {c.users_per_request} | {c.concurrency} | {c.requests} | "
            f"{c.p50_ms:.2f} | {min(rep):.2f}–{max(rep):.2f} | {c.p95_ms:.2f} | {c.p99_ms:.2f} | {c.users_per_s:.0f} | {ratio} |"
        )
    served = [c for c in cells if "server_side" in c.extra and c.extra["server_side"]]
    if served:
        lines += [
            "",
            "## Served requests: where the time goes",
            "",
            "Sequential cells, each served request interleaved with an in-process call of the same users "
            "(same background load). `served − in-process` is the p50 difference of these two interleaved "
            "series. The other columns are means per request: Triton's statistics extension (server-side: "
            "request total, queue, compute infer) read before and after the cell, and the served model's "
            "`execute()` and graph run timed inside the model (the exported model with two timers added). "
            "client+protocol = client round trip − server request total; IPC = compute infer − execute(); "
            "execute() overhead = execute() − graph run (decode, validate, encode). Warm-up requests "
            "are excluded (the totals are read after them).",
            "",
            "| variant | protocol | users | served p50 | in-process p50 (paired) | served − in-process | client mean "
            "| server mean | queue | compute infer | execute() | graph run | client+protocol | IPC | execute() overhead |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in served:
            s = c.extra["server_side"]
            g = lambda k, s=s: f"{s[k]:.3f}" if k in s else "–"  # noqa: E731
            paired = c.extra.get("paired_in_process_p50_ms")
            diff = c.extra.get("served_minus_in_process_p50_ms")
            lines.append(
                f"| {c.variant} | {c.protocol} | {c.users_per_request} | {c.p50_ms:.2f} | {'–' if paired is None else f'{paired:.2f}'} "
                f"| {'– (not interleaved)' if diff is None else f'{diff:+.2f}'} | {g('client_round_trip_mean_ms')} | {g('server_request_mean_ms')} "
                f"| {g('queue_mean_ms')} | {g('compute_infer_mean_ms')} | {g('execute_mean_ms')} | {g('graph_run_mean_ms')} "
                f"| {g('protocol_and_client_ms')} | {g('python_backend_ipc_ms')} | {g('funnel_execute_overhead_ms')} |"
            )
    steps = meta.get("floor_steps_p50_ms", {})
    nodes = meta.get("funnel_nodes_p50_ms", {})
    lines += ["", "## Floor, per step, next to funnel's node for that step (p50 ms)", "",
              "The floor is meant to be a lower bound: each step written the fastest known way. A funnel node "
              "faster than its floor step (negative difference beyond noise) would mean the floor is not.", "",
              "| step | floor 1 user | funnel node 1 user | floor 64 users | funnel node 64 users |", "|---|---|---|---|---|"]
    for k in steps.get("1", {}):
        n1 = _node_for_step(nodes.get("in-process u1", {}), k)
        n64 = _node_for_step(nodes.get("in-process u64", {}), k)
        lines.append(f"| {k} | {steps['1'][k]:.3f} | {'–' if n1 is None else f'{n1:.3f}'} | "
                     f"{steps.get('64', {}).get(k, float('nan')):.3f} | {'–' if n64 is None else f'{n64:.3f}'} |")
    if nodes:
        cols = list(nodes)
        lines += ["", "## funnel, per node (p50 ms)", "", "| node | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        names = list(dict.fromkeys(k for v in nodes.values() for k in v))
        for n in names:
            lines.append(f"| {n} | " + " | ".join(f"{nodes[c].get(n, float('nan')):.3f}" for c in cols) + " |")
    merlin = meta.get("merlin")
    if merlin:
        lines += ["", "## Merlin Systems 23.08 peer", "",
                  "Same work directory (data split, SavedModels, FAISS index file, feature values), same 1-user request "
                  "sequence, same embedded Triton binary; Merlin's stack in its own virtualenv (versions: "
                  + ", ".join(f"{k} {v}" for k, v in merlin.get("versions", {}).items()) + "). Its two TensorFlow "
                  "steps run inside its Python executor model (the embedded server has no TensorFlow backend). "
                  "`merlin-floor` is the same steps hand-written on Merlin's stack (Feast 0.31 with pure-Python "
                  "protobuf, TF 2.14, FAISS 1.7.4, numpy 1.24). Merlin in-process and served cells run back to back "
                  "(different processes), not interleaved.",
                  "",
                  f"- build + export {merlin.get('build_s')} s; server start-up {merlin.get('server_load_s')} s",
                  f"- a 4-user request in-process: {json.dumps(merlin.get('multi_user_in_process'))}",
                  f"- a 4-user request served: {json.dumps(merlin.get('multi_user_served'))}"]
    loads = {k: v for k, v in meta.items() if k.endswith("_load_s")}
    if loads:
        lines += ["", "Server start-up (until every model is ready): " + ", ".join(f"{k[:-7]} {v} s" for k, v in loads.items()) + "."]
    lines += ["", f"![latency and throughput]({stem.name}.png)", ""]
    notes = stem.parent / f"{stem.name}.notes.md"
    if notes.is_file():
        lines += [notes.read_text()]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    _plot(stem.with_suffix(".png"), cells)


#: floor step → (operator label prefix, which occurrence) of the funnel node doing that step
_STEP_NODES = {
    "user lookup": ("QueryFeast(user", 0), "query tower": ("PredictTensorflow", 0), "faiss": ("QueryFaiss", 0),
    "filter seen": ("FilterCandidates", 0), "item lookup": ("QueryFeast(item", 0), "unroll": ("UnrollFeatures", 0),
    "ranking": ("PredictTensorflow", 1), "sampling": ("SoftmaxSampling", 0),
}


def _node_for_step(nodes: dict[str, float], step: str) -> float | None:
    """p50 ms of the funnel node that does ``step`` (labels are '<index> <operator label>')."""
    if step not in _STEP_NODES:
        return None
    prefix, nth = _STEP_NODES[step]
    hits = [v for k, v in nodes.items() if k.split(" ", 1)[-1].startswith(prefix)]
    return hits[nth] if len(hits) > nth else None


def _plot(path: Path, cells: list[Cell]) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for variant in ("executor", "executor-nobatch", "ensemble"):
        pts = sorted((c.concurrency, c.p50_ms, c.p99_ms) for c in cells if c.variant == variant and c.protocol == "http" and c.users_per_request == 1)
        if pts:
            x = [p[0] for p in pts]
            line = a.plot(x, [p[1] for p in pts], marker="o", label=f"{variant} p50")[0]
            a.plot(x, [p[2] for p in pts], marker="x", linestyle="--", color=line.get_color(), label=f"{variant} p99")
    a.set(xlabel="concurrent clients (1 user/request, HTTP)", ylabel="latency (ms)", title="latency vs concurrency", xscale="log", yscale="log")
    a.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
    a.legend(fontsize=7)
    for variant, proto in (
        ("floor", "-"), ("in-process", "-"), ("in-process+item-cache", "-"), ("executor", "http"), ("executor", "grpc"), ("ensemble", "http"),
    ):
        pts = sorted((c.users_per_request, c.users_per_s) for c in cells if c.variant == variant and c.protocol == proto and c.concurrency == 1)
        if pts:
            b.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{variant}{'' if proto == '-' else ' ' + proto}")
    b.set(xlabel="users per request (sequential)", ylabel="users / s", title="throughput vs batch size", xscale="log", yscale="log")
    b.set_xticks(USER_COUNTS, [str(u) for u in USER_COUNTS])
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
