"""PredictPyTorch vs calling the model directly: the framework's overhead (same inputs, same run).

A Transformers4Rec-style traced session model (values/offsets dict in, next-item logits out;
funnel_torch.testing.T4RStandIn, 5,000 items) on B = 1, 16, 64 sessions of 20 items. For
each B the paths are timed round-robin (one call of each per iteration, so drift hits all alike):

- ``direct``:     the traced model on torch tensors made from the same numpy arrays (+ topk)
- ``op``:         ``PredictPyTorch.transform(Table)`` (the operator alone)
- ``ensemble``:   ``Ensemble.transform(Table)`` (graph executor + request validation)

for logits out (``logits``) and top-20 ids out (``top20``). ``overhead_us`` = p50(op) − p50(direct).

``--gpu`` adds the same cells on ``cuda`` (host numpy in; and a cupy table in through DLPack),
the ranking case (64 users × 100 candidates: UnrollFeatures → a torch ranker → scores,
in-process) and, with ``--served``, the graphs served on the embedded Triton (KIND_GPU with
``--gpu``, else KIND_CPU), HTTP, p50/p99.

    python benchmarks/torch_overhead.py                 # CPU, results/torch_overhead.{md,json}
    python benchmarks/torch_overhead.py --gpu --served  # on a GPU machine: results/torch_overhead_gpu.*
    python benchmarks/torch_overhead.py --smoke --out /tmp/x   # seconds: every path once, tiny n
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import RESULTS, write_results  # noqa: E402

from funnel import ColumnSchema, ColumnSelector, Ensemble, Ragged, Schema, Table  # noqa: E402
from funnel.ops import UnrollFeatures  # noqa: E402
from funnel.table import to_numpy  # noqa: E402
from funnel_torch import PredictPyTorch  # noqa: E402
from funnel_torch.testing import CAT, ITEM, Ranker, T4RStandIn, sessions, t4r_inputs  # noqa: E402

warnings.filterwarnings("ignore")
N_ITEMS, LENGTH, TOP = 5000, 20, 20
REQUEST = Schema([ColumnSchema(ITEM, "int64", dims=(None,)), ColumnSchema(CAT, "int64", dims=(None,))])


def percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 4), "p95_ms": round(float(np.percentile(a, 95)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4), "mean_ms": round(float(a.mean()), 4)}


def time_paths(paths: dict[str, Callable[[], Any]], iters: int, warmup: int, sync: Callable[[], None]) -> dict[str, list[float]]:
    for _ in range(warmup):
        for fn in paths.values():
            fn()
            sync()
    gc.collect()
    gc.freeze()
    out: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(iters):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            sync()
            out[name].append(time.perf_counter() - t0)
    gc.unfreeze()
    return out


def traced_model(tmp: Path, device: str) -> tuple[Path, Any]:
    torch.manual_seed(0)
    module = T4RStandIn(n_items=N_ITEMS, max_len=LENGTH, dim=64).eval()
    items, cats = sessions(0, 4, max_len=LENGTH, n_items=N_ITEMS)
    path = tmp / "t4r.pt"
    with torch.no_grad():
        torch.jit.trace(module, (t4r_inputs(items, cats),), strict=False).save(str(path))
    return path, torch.jit.load(str(path), map_location=device).eval()


def session_cells(path: Path, model: Any, device: str, batches: list[int], iters: int, warmup: int,
                  cupy_in: bool) -> list[dict[str, Any]]:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows = []
    logits_op = PredictPyTorch(path, device=device)
    top_op = PredictPyTorch(path, device=device, top_k=TOP)
    logits_ens = Ensemble([ITEM, CAT] >> PredictPyTorch(path, device=device), REQUEST)
    top_ens = Ensemble([ITEM, CAT] >> PredictPyTorch(path, device=device, top_k=TOP), REQUEST)
    for b in batches:
        rows += _batch_cells(b, model, device, cupy_in, (logits_op, top_op, logits_ens, top_ens), iters, warmup, sync)
    return rows


def _batch_cells(b: int, model: Any, device: str, cupy_in: bool, ops: tuple[Any, ...], iters: int, warmup: int,
                 sync: Callable[[], None]) -> list[dict[str, Any]]:
    logits_op, top_op, logits_ens, top_ens = ops
    items, cats = sessions(b, b, max_len=LENGTH, n_items=N_ITEMS, fixed=True)
    table = Table({ITEM: items, CAT: cats})
    if cupy_in:
        table = table.to_cupy()

    def feeds() -> dict[str, Any]:
        if cupy_in:  # the same cupy arrays, through DLPack
            return {ITEM + "__values": torch.from_dlpack(table[ITEM].values),
                    ITEM + "__offsets": torch.from_dlpack(table[ITEM].offsets),
                    CAT + "__values": torch.from_dlpack(table[CAT].values),
                    CAT + "__offsets": torch.from_dlpack(table[CAT].offsets)}
        return {k: v.to(device) for k, v in t4r_inputs(items, cats).items()}

    def direct_logits() -> Any:
        with torch.inference_mode():
            out = model(feeds())
            return out if device.startswith("cuda") else out.numpy()

    def direct_top() -> Any:
        with torch.inference_mode():
            return torch.topk(model(feeds()), TOP, dim=1)

    paths = {
        "direct/logits": direct_logits,
        "op/logits": lambda: logits_op.transform(table),
        "ensemble/logits": lambda: logits_ens.transform(table, validate=True),
        "direct/top20": direct_top,
        "op/top20": lambda: top_op.transform(table),
        "ensemble/top20": lambda: top_ens.transform(table, validate=True),
    }
    times = time_paths(paths, iters, warmup, sync)
    stats = {k: percentiles(v) for k, v in times.items()}
    rows = []
    for out in ("logits", "top20"):
        base = stats[f"direct/{out}"]["p50_ms"]
        for path_name in ("direct", "op", "ensemble"):
            s = stats[f"{path_name}/{out}"]
            rows.append({
                "device": device + ("+cupy-in" if cupy_in else ""), "case": f"sessions×{LENGTH}", "B": b,
                "output": out, "path": path_name, **s,
                "throughput_sessions_s": round(b / (s["mean_ms"] / 1e3), 1),
                "overhead_us": round((s["p50_ms"] - base) * 1e3, 1) if path_name != "direct" else 0.0,
            })
    return rows


def ranker_cells(tmp: Path, device: str, iters: int, warmup: int, users: int = 64, candidates: int = 100) -> tuple[Ensemble, Table, list[dict[str, Any]]]:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.manual_seed(1)
    ranker = Ranker(n_items=N_ITEMS).eval()
    path = tmp / "ranker.pt"
    torch.jit.script(ranker).save(str(path))
    req = Schema([ColumnSchema("user_age", "int32"), ColumnSchema("item_id", "int64", dims=(None,))])
    unrolled = ["item_id"] >> UnrollFeatures("item_id", ColumnSelector(["user_age"]))
    op = PredictPyTorch(path, device=device, output_schema=Schema([ColumnSchema("score", "float32", dims=(1,))]))
    ens = Ensemble(unrolled >> op, req)
    rng = np.random.default_rng(2)
    ids = rng.integers(1, N_ITEMS, users * candidates).astype("int64")
    table = Table({"user_age": rng.integers(18, 80, users).astype("int32"),
                   "item_id": Ragged.from_lengths(ids, np.full(users, candidates))})
    scripted = torch.jit.load(str(path), map_location=device).eval()
    ages = np.repeat(table["user_age"], candidates)

    def direct() -> Any:
        with torch.inference_mode():
            return scripted(torch.from_numpy(ages).to(device), torch.from_numpy(ids).to(device))

    times = time_paths({"direct": direct, "ensemble": lambda: ens.transform(table)}, iters, warmup, sync)
    rows = []
    base = percentiles(times["direct"])["p50_ms"]
    for name, t in times.items():
        s = percentiles(t)
        rows.append({"device": device, "case": f"rank {users}×{candidates}", "B": users, "output": "scores",
                     "path": name, **s, "throughput_sessions_s": round(users / (s["mean_ms"] / 1e3), 1),
                     "overhead_us": round((s["p50_ms"] - base) * 1e3, 1) if name != "direct" else 0.0})
    return ens, table, rows


def served_cells(ens: Ensemble, table: Table, case: str, kind: str, tmp: Path, iters: int, warmup: int) -> dict[str, Any]:
    from funnel_triton import TritonServer  # noqa: PLC0415

    repo = ens.export(tmp / f"repo-{case.replace(' ', '_').replace('×', 'x')}", instance_kind=kind)
    with TritonServer(repo, timeout=300) as server:
        local = ens.transform(table)
        served = server.infer(table, model="funnel")
        for name in local.column_names:
            a, b = local[name], served[name]
            va = a.values if isinstance(a, Ragged) else a
            vb = b.values if isinstance(b, Ragged) else b
            np.testing.assert_allclose(to_numpy(vb), to_numpy(va), rtol=1e-4, atol=1e-5)
        times = time_paths({"served": lambda: server.infer(table, model="funnel")}, iters, warmup, lambda: None)
    s = percentiles(times["served"])
    return {"device": f"triton KIND_{kind.upper()}", "case": case, "B": table.num_rows, "output": "top20" if "sessions" in case else "scores",
            "path": "served/http", **s, "throughput_sessions_s": round(table.num_rows / (s["mean_ms"] / 1e3), 1),
            "overhead_us": "", "equal_to_in_process": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny n: every path once, seconds")
    parser.add_argument("--gpu", action="store_true", help="add cuda cells (and KIND_GPU with --served)")
    parser.add_argument("--served", action="store_true", help="add served cells on the embedded Triton (HTTP)")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="results directory (default benchmarks/results)")
    args = parser.parse_args()
    iters, warmup = (5, 2) if args.smoke else (args.iters, 30)
    torch.set_num_threads(args.threads)
    name = "torch_overhead_gpu" if args.gpu else "torch_overhead"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="funnel-torch-bench-") as tmp_s:
        tmp = Path(tmp_s)
        path, model = traced_model(tmp, "cpu")
        batches = [1, 16, 64]
        rows += session_cells(path, model, "cpu", batches, iters, warmup, cupy_in=False)
        ens_rank, rank_table, rank_rows = ranker_cells(tmp, "cpu", iters, warmup)
        rows += rank_rows
        if args.gpu:
            _, gmodel = traced_model(tmp, "cuda")
            rows += session_cells(path, gmodel, "cuda", batches, iters, warmup, cupy_in=False)
            rows += session_cells(path, gmodel, "cuda", [64], iters, warmup, cupy_in=True)
            ens_rank, rank_table, rank_rows = ranker_cells(tmp, "cuda", iters, warmup)
            rows += rank_rows
        if args.served:
            kind = "gpu" if args.gpu else "cpu"
            device = "cuda" if args.gpu else "cpu"
            items, cats = sessions(64, 64, max_len=LENGTH, n_items=N_ITEMS, fixed=True)
            ens = Ensemble([ITEM, CAT] >> PredictPyTorch(path, device=device, top_k=TOP), REQUEST)
            rows.append(served_cells(ens, Table({ITEM: items, CAT: cats}), f"sessions×{LENGTH}", kind, tmp, iters, warmup))
            rows.append(served_cells(ens_rank, rank_table, "rank 64×100", kind, tmp, iters, warmup))
    meta = {"torch": torch.__version__, "intra_op_threads": args.threads, "iters": iters, "n_items": N_ITEMS,
            "gpu": torch.cuda.get_device_name(0) if args.gpu else None, "smoke": args.smoke}
    out = write_results(name, rows, meta, out=args.out or RESULTS)
    for row in rows:
        print(f"{row['device']:<20} {row['case']:<14} B={row['B']:<3} {row['output']:<7} {row['path']:<12} "
              f"p50 {row['p50_ms']:.3f} p99 {row['p99_ms']:.3f} ms  overhead {row['overhead_us']} µs")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
