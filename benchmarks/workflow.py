"""The Transformers4Rec example's workflow (funnel-workflow) on a 50-row raw request, and offline.

Same run, same request (the last 50 interactions of generated click data: a few sessions):

- in-process, timed round-robin (one call of each per iteration):
  ``array``     — ``TransformWorkflow.transform(Table)``: the served path (built-in ops on numpy
                  arrays, the example's LambdaOps / ItemRecency on pandas), Filter skipped;
  ``dataframe`` — ``workflow.transform(DataFrame).compute()``: the offline DataFrame path;
  ``floor``     — the same features hand-written in pandas with the fitted statistics.
- served (executor model on the embedded Triton, HTTP and gRPC): p50/p99 at concurrency 1
  and requests/s at concurrency 1 and 8;
  ``built-in``  — for scale, a session workflow of built-in ops only (Categorify with
                  buckets, HashBucket, LogOp → Normalize, NormalizeMinMax → Clip, Bucketize,
                  JoinExternal, FillMissing, Groupby, ListSlice): no pandas per request;
- offline fit + transform throughput (interactions/s), single process and Dask (2 workers).

Results: ``benchmarks/results/workflow.{json,md}`` (``--out DIR`` elsewhere).

    python benchmarks/workflow.py                # ≥ 1M interactions offline, 2000 timed requests
    python benchmarks/workflow.py --smoke        # tiny sizes, seconds
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "plugins" / "workflow_op" / "tests"))  # the example, as ported

import workflow_session_etl as session_etl  # noqa: E402
from _harness import measure, write_results  # noqa: E402

from funnel import Ensemble, Table  # noqa: E402
from funnel_workflow import TransformWorkflow  # noqa: E402
from funnel_workflow.testing import builtin_workflow, make_clicks  # noqa: E402


def pct(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 4), "p95_ms": round(float(np.percentile(a, 95)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4), "mean_ms": round(float(a.mean()), 4)}


def pandas_floor(workflow: Any) -> Any:
    """The example's features for one request, hand-written in pandas with fitted statistics."""
    cats = {n: workflow.categories(n) for n in ("session_id", "category", "item_id")}
    index = {n: pd.Index(c[n].to_numpy()) for n, c in cats.items()}
    norm = next(op for op in workflow.ops if type(op).__name__ == "Normalize")
    (m,) = norm.moments.values()
    mean, std = m["mean"], m["std"]

    def run(df: pd.DataFrame) -> pd.DataFrame:
        d = pd.DataFrame({"timestamp": df["timestamp"].to_numpy()})
        for n in ("session_id", "category", "item_id"):
            pos = index[n].get_indexer(df[n].to_numpy())
            d[n] = np.where(pos >= 0, pos + 2, 1)
        dt = pd.to_datetime(d["timestamp"], unit="s")
        d["event_time_dt"] = dt
        d["et_dayofweek_sin"] = np.sin(2 * np.pi * ((dt.dt.weekday + 1) + 0.000001) / 7)
        age = (df["timestamp"] - df["itemid_ts_first"]) / 86400
        age = age * (age >= 0)
        d["product_recency_days_log_norm"] = ((np.log1p(age.astype(np.float32)) - mean) / std).astype(np.float32)
        d = d.sort_values(["session_id", "timestamp"], kind="stable")
        g = d.groupby("session_id", sort=True)
        out = pd.DataFrame({"session_id": g.size().index, "item_id-count": g.size().to_numpy()})
        for c in ("item_id", "category", "et_dayofweek_sin", "product_recency_days_log_norm"):
            out[f"{c}-list_seq"] = [v[:20] for v in g[c].apply(lambda s: s.to_numpy()).to_numpy()]
        first = g["event_time_dt"].first()
        out["day_index"] = ((first - first.min()).dt.days + 1).to_numpy()
        return out

    return run


def round_robin(paths: dict[str, Any], iters: int, warmup: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        for fn in paths.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in paths}
    gc.collect()
    gc.freeze()
    for _ in range(iters):
        for k, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    gc.unfreeze()
    return times


def served(ensemble: Ensemble, request: Table, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    from funnel_triton import TritonServer  # noqa: PLC0415
    from funnel_triton.client import infer, make_client  # noqa: PLC0415

    repo = ensemble.export(workdir / "repo", name="workflow")
    rows = []
    with TritonServer(repo, timeout=180, env={"FUNNEL_TRUST_CODE": "1"}) as srv:
        expected = ensemble.transform(request)
        for protocol in ("http", "grpc"):
            url = srv.http_url if protocol == "http" else srv.grpc_url
            got = srv.infer(request, model="workflow", protocol=protocol)
            assert got == expected, f"served ({protocol}) differs from in-process"
            for conc in (1, 8):
                local = threading.local()

                def call(local: Any = local, url: str = url, protocol: str = protocol) -> Any:
                    if not hasattr(local, "client"):
                        local.client = make_client(url, protocol)
                    return infer(local.client, request, model="workflow", protocol=protocol)

                stats = measure(call, n=args.requests, warmup=args.warmup, concurrency=conc)
                rows.append({"path": f"served executor {protocol}", "concurrency": conc, **stats.to_dict()})
                print(rows[-1], flush=True)
    return rows


def offline(n_sessions: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    clicks = make_clicks(n_sessions=n_sessions, seed=7, n_items=20_000)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    _, out = session_etl.build(clicks)  # fit + transform + compute
    dt = time.perf_counter() - t0
    rows.append({"path": "offline fit+transform single-process", "interactions": len(clicks), "sessions_out": len(out),
                 "seconds": round(dt, 3), "interactions_per_s": round(len(clicks) / dt)})
    print(rows[-1], flush=True)
    if args.no_dask:
        return rows
    import dask.dataframe as dd  # noqa: PLC0415
    import distributed  # noqa: PLC0415

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        ddf = dd.from_pandas(clicks, npartitions=args.partitions)
        t0 = time.perf_counter()
        _, out = session_etl.build(ddf)
        dt = time.perf_counter() - t0
    rows.append({"path": "offline fit+transform dask (2 workers, in-process cluster)", "interactions": len(clicks),
                 "partitions": args.partitions, "sessions_out": len(out), "seconds": round(dt, 3),
                 "interactions_per_s": round(len(clicks) / dt)})
    print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds); results into --out")
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--requests", type=int, default=2000, help="timed served requests per cell")
    parser.add_argument("--sessions", type=int, default=90_000, help="sessions of the offline data (≈12 clicks each)")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--no-serve", action="store_true")
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--peers", default="", help="'nvtabular': also NVTabular 23.08 on the same data and request "
                        "(benchmarks/peers/nvtabular, needs .venv-merlin)")
    parser.add_argument("--peer-n", type=int, default=200, help="timed requests per NVTabular cell")
    parser.add_argument("--out", default=None, help="results directory (default benchmarks/results)")
    args = parser.parse_args()
    # a stopped run still stops its Triton server (context managers run on SystemExit)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.smoke:
        args.iters, args.warmup, args.requests, args.sessions, args.partitions = 30, 5, 30, 400, 2

    clicks = make_clicks(n_sessions=3000, seed=0, n_items=2000)
    workflow, _ = session_etl.build(clicks)
    batch = clicks.sort_values("timestamp", kind="stable").iloc[-50:].reset_index(drop=True)
    request = Table.from_pandas(batch, schema=workflow.input_schema)
    op = TransformWorkflow(workflow)
    ensemble = Ensemble(workflow.input_schema.column_names >> op, workflow.input_schema)
    floor = pandas_floor(workflow)
    # the three paths compute the same sessions
    a = op.transform(request)
    f = floor(batch)
    assert np.asarray(a["session_id"]).tolist() == f["session_id"].tolist()
    assert a["item_id-list_seq"].to_lists() == [list(x) for x in f["item_id-list_seq"]]
    builtin = TransformWorkflow(builtin_workflow(clicks))  # no LambdaOps/user ops: arrays only
    paths = {
        "in-process array (TransformWorkflow)": lambda: op.transform(request),
        "in-process array, built-in ops only (no pandas; another workflow)": lambda: builtin.transform(request),
        "in-process ensemble (Ensemble.transform)": lambda: ensemble.transform(request),
        "in-process dataframe (workflow.transform(df).compute())": lambda: workflow.transform(batch).compute(),
        "hand-written pandas floor": lambda: floor(batch),
    }
    times = round_robin(paths, args.iters, args.warmup)
    floor_p50 = pct(times["hand-written pandas floor"])["p50_ms"]
    rows: list[dict[str, Any]] = []
    for k, v in times.items():
        p = pct(v)
        rows.append({"path": k, "rows_in": len(batch), "sessions_out": a.num_rows, **p,
                     "p50_vs_floor": round(p["p50_ms"] / floor_p50, 3)})
        print(rows[-1], flush=True)
    if not args.no_serve:
        with tempfile.TemporaryDirectory() as tmp:
            rows += served(ensemble, request, args, Path(tmp))
    peer_info = None
    if "nvtabular" in args.peers.split(","):
        import importlib.util  # noqa: PLC0415

        spec = importlib.util.spec_from_file_location("nvtabular_peer", ROOT / "benchmarks" / "peers" / "nvtabular" / "run.py")
        peer = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(peer)  # type: ignore[union-attr]
        peer_rows, peer_info = peer.run_peer(clicks, batch, n=args.peer_n)
        for r in peer_rows:
            print(r, flush=True)
        rows += peer_rows
    rows += offline(args.sessions, args)
    meta = {"smoke": args.smoke, "request_rows": len(batch), "sessions_in_request": a.num_rows,
            "data": "generated clicks (funnel_workflow.testing.make_clicks), not MovieLens",
            "targets": "served p50 <= 2 ms, in-process <= 0.5 ms (issue 18)", "nvtabular_peer": peer_info}
    path = write_results("workflow", rows, meta=meta, out=None if args.out is None else Path(args.out))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
