"""A multistage pipeline on torch + FAISS + sampling: CPU vs CUDA, in-process vs served KIND_CPU / KIND_GPU.

The graph (the issue #17 item 6 pipeline, built only from funnel-torch, funnel-faiss,
funnel-sampling and core, so it runs on a GPU machine without TensorFlow or Feast):

    request user_id, seen_item_ids (the user's 20 most recent items)
      → PredictPyTorch(query tower: user embedding → MLP → 64-d, L2-normalised)
      → QueryFaiss(flat inner-product index of the item tower's vectors, top 120)
      → FilterCandidates(seen_item_ids)          (≥ 100 candidates left per user)
      → UnrollFeatures(item_id, user_id)
      → PredictPyTorch(ranker: MLP over user and item embeddings, row-wise over candidates)
      → TopK(10)

and ``rank``, the ranking stage alone on exactly 100 candidates per user (the request holds
user_id and the candidates the full graph's retrieval returns, seen items removed, cut to 100):
UnrollFeatures → ranker → TopK(10).

Data: MovieLens-100K-shaped (943 users, 1,682 items, ~90k interactions), generated here from
a fixed seed (no downloads): each user picks items by a hidden taste model plus item
popularity; the last 10 % of each user's interactions are held out. The three models are
trained here on the CPU (a few epochs, seconds) and their quality on the held-out
interactions is recorded next to the timings (recall@100 of retrieval vs popularity, AUC of
the ranker), so the numbers come from real trained models, not random weights.

Cells, for 1 and 64 users per request, timed round-robin (one call of each path per
iteration, every path on the same request), ``--repeats`` times (median of the per-repeat
figures; the spread is the range of the per-repeat p50 and p99):

- ``in-process/cpu``   ``Ensemble.transform`` with the models on the CPU
- ``in-process/cuda``  the same graph with the models on the GPU (``--gpu``)
- ``served/KIND_CPU``  the CPU graph exported (executor mode) and served on the embedded Triton, HTTP
- ``served/KIND_GPU``  the GPU graph (``device="instance"``) exported with ``instance_kind="gpu"`` (``--gpu``)

Served results are checked against ``Ensemble.transform`` of the same graph before timing
(ids equal, scores within 1e-4), and CUDA against CPU (agreement recorded). FAISS runs on the
CPU in every cell (faiss-cpu; the GPU machine has no faiss-gpu: see the results file).

    python benchmarks/torch_multistage.py --gpu      # on a GPU machine: results/torch_multistage_gpu.{json,md}
    python benchmarks/torch_multistage.py            # CPU only: results/torch_multistage.{json,md}
    python benchmarks/torch_multistage.py --smoke --out /tmp/x   # seconds: tiny n, one repeat, CPU
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # FAISS's OpenMP pool spins on a busy machine; the servers inherit it

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import RESULTS, machine, write_results  # noqa: E402

from funnel import ColumnSchema, ColumnSelector, Ensemble, Ragged, Schema, Table  # noqa: E402
from funnel.ops import FilterCandidates, UnrollFeatures  # noqa: E402
from funnel_faiss import QueryFaiss, build_index  # noqa: E402
from funnel_sampling import TopK  # noqa: E402
from funnel_torch import PredictPyTorch  # noqa: E402

warnings.filterwarnings("ignore")

N_USERS, N_ITEMS = 943, 1682          # MovieLens-100K's shape; ids 1..N (0 is never used)
DIM, RETRIEVE, SEEN, RANKED, TOP = 64, 120, 20, 100, 10
RUN_ID = "torch_multistage"


# -- data ------------------------------------------------------------------------------------
def make_data(seed: int = 0) -> dict[str, Any]:
    """Interactions (user, item) in time order per user, split into train / held-out test."""
    rng = np.random.default_rng(seed)
    taste_u = rng.normal(size=(N_USERS + 1, 8))
    taste_i = rng.normal(size=(N_ITEMS + 1, 8))
    popularity = rng.normal(scale=1.0, size=N_ITEMS + 1)
    counts = np.clip(rng.lognormal(mean=4.3, sigma=0.7, size=N_USERS + 1), 20, 600).astype(int)
    train_u, train_i, test_u, test_i, seen = [], [], [], [], {}
    for u in range(1, N_USERS + 1):
        logits = taste_i[1:] @ taste_u[u] + popularity[1:]
        keys = logits + rng.gumbel(size=N_ITEMS)              # sampling without replacement
        items = (np.argsort(-keys)[: counts[u]] + 1).astype(np.int64)
        items = rng.permutation(items)                        # the order they were seen in
        cut = max(1, int(round(len(items) * 0.9)))
        train_u.append(np.full(cut, u)), train_i.append(items[:cut])
        test_u.append(np.full(len(items) - cut, u)), test_i.append(items[cut:])
        seen[u] = items[:cut][-SEEN:]                         # the most recent training items
    return {"train_u": np.concatenate(train_u).astype(np.int64), "train_i": np.concatenate(train_i),
            "test_u": np.concatenate(test_u).astype(np.int64), "test_i": np.concatenate(test_i), "seen": seen}


# -- models ------------------------------------------------------------------------------------
class Tower(nn.Module):
    """An id embedding → MLP → L2-normalised ``DIM``-d vector (the query tower; the item tower alike)."""

    def __init__(self, n: int, emb: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.emb = nn.Embedding(n, emb)
        self.mlp = nn.Sequential(nn.Linear(emb, hidden), nn.ReLU(), nn.Linear(hidden, DIM))

    def forward(self, user_id: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(self.emb(user_id)), dim=1)


class RankerMLP(nn.Module):
    """Score of (user, item): an MLP over both embeddings and their product; one logit per row."""

    def __init__(self, emb: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.users = nn.Embedding(N_USERS + 1, emb)
        self.items = nn.Embedding(N_ITEMS + 1, emb)
        self.mlp = nn.Sequential(nn.Linear(3 * emb, hidden), nn.ReLU(), nn.Linear(hidden, hidden // 2), nn.ReLU(),
                                 nn.Linear(hidden // 2, 1))

    def forward(self, user_id: torch.Tensor, item_id: torch.Tensor) -> torch.Tensor:
        u, i = self.users(user_id), self.items(item_id)
        return self.mlp(torch.cat([u, i, u * i], dim=1)).squeeze(1)


def train_models(data: dict[str, Any], epochs: int, seed: int = 0,
                 fraction: float = 1.0) -> tuple[Tower, Tower, RankerMLP, dict[str, float]]:
    """Two towers (softmax over the whole catalogue: 1,682 items are cheap) and the ranker (2 sampled
    negatives per positive), on the CPU, on ``fraction`` of the training interactions."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    take = rng.permutation(len(data["train_u"]))[: max(1024, int(len(data["train_u"]) * fraction))]
    users, items = torch.from_numpy(data["train_u"][take]), torch.from_numpy(data["train_i"][take])
    query, item_tower, ranker = Tower(N_USERS + 1), Tower(N_ITEMS + 1), RankerMLP()
    opt = torch.optim.Adam([*query.parameters(), *item_tower.parameters()], lr=1e-2)
    catalogue = torch.arange(1, N_ITEMS + 1)
    started = time.perf_counter()
    for _ in range(epochs):
        for b in torch.from_numpy(rng.permutation(len(users))).split(2048):
            logits = query(users[b]) @ item_tower(catalogue).T / 0.1
            loss = F.cross_entropy(logits, items[b] - 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    opt = torch.optim.Adam(ranker.parameters(), lr=1e-2)
    n_neg = 2
    for _ in range(epochs):
        neg_u = users.repeat(n_neg)
        neg_i = torch.from_numpy(rng.integers(1, N_ITEMS + 1, len(neg_u)))
        all_u, all_i = torch.cat([users, neg_u]), torch.cat([items, neg_i])
        label = torch.cat([torch.ones(len(users)), torch.zeros(len(neg_u))])
        for b in torch.from_numpy(rng.permutation(len(all_u))).split(2048):
            loss = F.binary_cross_entropy_with_logits(ranker(all_u[b], all_i[b]), label[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    train_s = time.perf_counter() - started
    for m in (query, item_tower, ranker):
        m.eval()
    return query, item_tower, ranker, {"train_s": round(train_s, 1), **quality(data, query, item_tower, ranker, rng)}


def quality(data: dict[str, Any], query: Tower, item_tower: Tower, ranker: RankerMLP,
            rng: np.random.Generator) -> dict[str, float]:
    """Held-out recall@100 of retrieval (training items excluded) vs popularity, and the ranker's AUC
    (held-out items against random items the user never interacted with)."""
    with torch.inference_mode():
        q = query(torch.arange(N_USERS + 1)).numpy()
        v = item_tower(torch.arange(N_ITEMS + 1)).numpy()
    scores = q @ v.T
    scores[:, 0] = -np.inf
    scores[data["train_u"], data["train_i"]] = -np.inf
    pop = np.bincount(data["train_i"], minlength=N_ITEMS + 1).astype(float)
    pop_scores = np.tile(pop, (N_USERS + 1, 1))
    pop_scores[:, 0] = -np.inf
    pop_scores[data["train_u"], data["train_i"]] = -np.inf

    def recall(s: np.ndarray) -> float:
        top = np.argpartition(-s, RANKED, axis=1)[:, :RANKED]
        hit = np.zeros_like(s, dtype=bool)
        np.put_along_axis(hit, top, True, axis=1)
        return float(hit[data["test_u"], data["test_i"]].mean())

    known = set(zip(data["train_u"].tolist(), data["train_i"].tolist())) | set(zip(data["test_u"].tolist(), data["test_i"].tolist()))
    neg_u = data["test_u"]
    neg_i = rng.integers(1, N_ITEMS + 1, len(neg_u))
    fresh = np.array([(u, i) not in known for u, i in zip(neg_u.tolist(), neg_i.tolist())])
    with torch.inference_mode():
        pos = ranker(torch.from_numpy(data["test_u"]), torch.from_numpy(data["test_i"])).numpy()
        neg = ranker(torch.from_numpy(neg_u[fresh]), torch.from_numpy(neg_i[fresh])).numpy()
    both = np.concatenate([pos, neg])
    ranks = both.argsort().argsort() + 1.0
    auc = (ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    return {"retrieval_recall_at_100": round(recall(scores), 4), "popularity_recall_at_100": round(recall(pop_scores), 4),
            "ranker_auc": round(float(auc), 4), "random_recall_at_100": round(RANKED / N_ITEMS, 4)}


def save_models(tmp: Path, data: dict[str, Any], query: Tower, item_tower: Tower, ranker: RankerMLP) -> dict[str, Path]:
    """TorchScript files for the two served models and the FAISS index of the item vectors."""
    paths = {"query": tmp / "query_tower.pt", "ranker": tmp / "ranker.pt", "index": tmp / "items.faiss"}
    torch.jit.script(query).save(str(paths["query"]))
    torch.jit.script(ranker).save(str(paths["ranker"]))
    with torch.inference_mode():
        vectors = item_tower(torch.arange(1, N_ITEMS + 1)).numpy().astype(np.float32)
    build_index(vectors, np.arange(1, N_ITEMS + 1, dtype=np.int64), paths["index"], kind="flat", metric="ip")
    return paths


# -- graphs ------------------------------------------------------------------------------------
FULL_REQUEST = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("seen_item_ids", "int64", dims=(None,))])
RANK_REQUEST = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("item_id", "int64", dims=(None,))])


def _ranking(candidates: Any, paths: dict[str, Path], device: str, threads: int) -> Any:
    combined = candidates >> UnrollFeatures("item_id", ColumnSelector(["user_id"]))
    scores = combined >> PredictPyTorch(paths["ranker"], device=device, intra_op_threads=threads,
                                        output_schema=Schema([ColumnSchema("score", "float32")]))
    return combined["item_id"] >> TopK(relevance_col=scores["score"], topk=TOP)


def full_graph(paths: dict[str, Path], device: str, threads: int) -> Ensemble:
    query = ["user_id"] >> PredictPyTorch(paths["query"], device=device, intra_op_threads=threads,
                                          output_schema=Schema([ColumnSchema("query_vector", "float32", dims=(DIM,))]))
    retrieval = query >> QueryFaiss(str(paths["index"]), topk=RETRIEVE, output_col="item_id")
    filtered = retrieval >> FilterCandidates(ColumnSelector(["seen_item_ids"]), input_col="item_id")
    return Ensemble(_ranking(filtered, paths, device, threads), FULL_REQUEST)


def retrieval_graph(paths: dict[str, Path]) -> Ensemble:
    query = ["user_id"] >> PredictPyTorch(paths["query"], device="cpu",
                                          output_schema=Schema([ColumnSchema("query_vector", "float32", dims=(DIM,))]))
    retrieval = query >> QueryFaiss(str(paths["index"]), topk=RETRIEVE, output_col="item_id")
    return Ensemble(retrieval >> FilterCandidates(ColumnSelector(["seen_item_ids"]), input_col="item_id"), FULL_REQUEST)


def rank_graph(paths: dict[str, Path], device: str, threads: int) -> Ensemble:
    return Ensemble(_ranking(["item_id"], paths, device, threads), RANK_REQUEST)


def requests(data: dict[str, Any], paths: dict[str, Path], users: int, pool: int, seed: int) -> dict[str, list[Table]]:
    """``pool`` requests of ``users`` distinct users each, for both graphs (the same users)."""
    rng = np.random.default_rng(seed)
    retrieve = retrieval_graph(paths)
    full, rank = [], []
    for _ in range(pool):
        ids = rng.choice(np.arange(1, N_USERS + 1), size=users, replace=False).astype(np.int64)
        req = Table({"user_id": ids, "seen_item_ids": Ragged.from_lists([data["seen"][int(u)] for u in ids], dtype="int64")})
        full.append(req)
        cand = retrieve.transform(req)["item_id"]
        lists = cand.to_lists()
        short = min(len(c) for c in lists)
        if short < RANKED:
            raise RuntimeError(f"retrieval left {short} candidates for a user after removing seen items; "
                               f"RETRIEVE ({RETRIEVE}) must exceed RANKED ({RANKED}) by at least SEEN ({SEEN})")
        rank.append(Table({"user_id": ids, "item_id": Ragged.from_lists([c[:RANKED] for c in lists], dtype="int64")}))
    return {"full": full, "rank": rank}


# -- timing ------------------------------------------------------------------------------------
def stats_of(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def round_robin(paths: dict[str, Callable[[int], Any]], iters: int, warmup: int, pool: int) -> dict[str, list[float]]:
    """One call of every path per iteration, on request ``i % pool``; seconds per call."""
    for i in range(warmup):
        for fn in paths.values():
            fn(i % pool)
    gc.collect()
    gc.freeze()
    out: dict[str, list[float]] = {k: [] for k in paths}
    try:
        for i in range(iters):
            for name, fn in paths.items():
                t0 = time.perf_counter()
                fn(i % pool)
                out[name].append(time.perf_counter() - t0)
    finally:
        gc.unfreeze()
    return out


def compare(a: Table, b: Table, rtol: float = 1e-4, atol: float = 1e-5) -> dict[str, Any]:
    """How two TopK outputs agree: rows with identical ids, max score difference."""
    ids_a, ids_b = np.asarray(a["ordered_ids"]), np.asarray(b["ordered_ids"])
    sa, sb = np.asarray(a["ordered_scores"], dtype=np.float64), np.asarray(b["ordered_scores"], dtype=np.float64)
    same_rows = float(np.mean(np.all(ids_a == ids_b, axis=1)))
    max_diff = float(np.max(np.abs(sa - sb))) if sa.size else 0.0
    equal = (same_rows == 1.0 and np.array_equal(np.asarray(a["ordered_lengths"]), np.asarray(b["ordered_lengths"]))
             and bool(np.allclose(sa, sb, rtol=rtol, atol=atol)))
    return {"equal": equal, "rows_same_ids": same_rows, "max_score_diff": max_diff}


def served_path(server: Any, reqs: list[Table], schema: Schema) -> Callable[[int], Any]:
    """A served call as a client makes it: prebuilt HTTP inputs, response decoded into a Table."""
    from funnel_triton.client import response_to_table, table_to_inputs  # noqa: PLC0415

    client = server.client("http")
    inputs = [table_to_inputs(r, protocol="http", schema=schema) for r in reqs]
    return lambda i: response_to_table(client.infer("funnel", inputs[i]))


def run_cells(graph: str, ensembles: dict[str, Ensemble], servers: dict[str, Any], reqs: list[Table],
              users: int, iters: int, warmup: int, repeats: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Check served == in-process (and cuda vs cpu), then time every path round-robin ``repeats`` times."""
    checks: dict[str, Any] = {}
    reference = {dev: [ens.transform(r) for r in reqs] for dev, ens in ensembles.items()}
    live = {}
    for kind, server in servers.items():
        dev = "cpu" if kind == "KIND_CPU" else "cuda"
        try:
            got = [compare(server.infer(r), ref) for r, ref in zip(reqs, reference[dev])]
        except Exception as exc:  # noqa: BLE001 - recorded in the results; the other paths still run
            checks[f"served/{kind} vs in-process/{dev}"] = {"equal": False, "rows_same_ids": 0.0, "max_score_diff": None,
                                                          "error": f"{type(exc).__name__}: {exc}"[:2000]}
            print(f"{graph} ×{users} served/{kind} failed: {exc}", file=sys.stderr, flush=True)
            continue
        live[kind] = server
        checks[f"served/{kind} vs in-process/{dev}"] = {
            "equal": all(g["equal"] for g in got), "rows_same_ids": min(g["rows_same_ids"] for g in got),
            "max_score_diff": max(g["max_score_diff"] for g in got)}
    if "cuda" in reference:
        got = [compare(c, r, rtol=1e-3, atol=1e-4) for c, r in zip(reference["cuda"], reference["cpu"])]
        checks["in-process/cuda vs in-process/cpu"] = {
            "equal": all(g["equal"] for g in got), "rows_same_ids": min(g["rows_same_ids"] for g in got),
            "max_score_diff": max(g["max_score_diff"] for g in got)}
    paths: dict[str, Callable[[int], Any]] = {
        f"in-process/{dev}": (lambda i, ens=ens: ens.transform(reqs[i])) for dev, ens in ensembles.items()}
    for kind, server in live.items():
        paths[f"served/{kind}"] = served_path(server, reqs, ensembles["cpu"].input_schema)
    per_repeat: dict[str, list[dict[str, float]]] = {k: [] for k in paths}
    for _ in range(repeats):
        for name, samples in round_robin(paths, iters, warmup, len(reqs)).items():
            per_repeat[name].append(stats_of(samples))
    rows = []
    for name, reps in per_repeat.items():
        med = {k: float(np.median([r[k] for r in reps])) for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")}
        p50s, p99s = [r["p50_ms"] for r in reps], [r["p99_ms"] for r in reps]
        check = next((v for k, v in checks.items() if k.startswith(name + " vs")), None)
        rows.append({
            "graph": graph, "users": users, "path": name, "n": iters, "repeats": repeats,
            **{k: round(v, 3) for k, v in med.items()},
            "users_per_s": round(users / (med["mean_ms"] / 1e3), 1),
            "p50_range_ms": f"{min(p50s):.3f}–{max(p50s):.3f}", "p99_range_ms": f"{min(p99s):.3f}–{max(p99s):.3f}",
            "equal_to_in_process": "" if check is None else check["equal"],
        })
    return rows, checks


# -- results -----------------------------------------------------------------------------------
FAISS_GPU_FINDING = (
    "No faiss GPU build can be carried to the H200 machine within the device tool's 64 MiB per call. "
    "The package index has faiss-gpu-cu12 1.14.1.post1 (cp312 manylinux wheel, 48.4 MB) and faiss-gpu 1.15.1 "
    "(abi3 wheel, 135.3 MB; faiss-gpu-cu13 does not exist), and faiss-gpu-cu11 1.14.1.post1 (48.4 MB). "
    "Each links the CUDA 12 (or 11) runtime and cuBLAS and requires them as wheels "
    "(nvidia-cuda-runtime-cu12, nvidia-cublas-cu12 ≥ 12.1.3.1: pip resolves the newest, 12.9.3.13, a 581.2 MB wheel). "
    "The GPU machine's image has only CUDA 13's libraries (torch 2.11+cu130, cupy-cuda13x), so cuBLAS 12 would have "
    "to travel too: ≥ 630 MB, about ten carries of ≤ 64 MiB, against a budget of three calls. "
    "Every cell therefore runs FAISS on the CPU (faiss-cpu 1.15.1; the query vectors of the CUDA cells are copied "
    "to the host by QueryFaiss, a 64×64 float32 copy); the GPU index path of funnel-faiss stays untested.")


def write_markdown(out: Path, name: str, rows: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    q = meta["quality"]
    lines = [
        "# A torch multistage pipeline: CPU vs CUDA, in-process vs served KIND_CPU / KIND_GPU",
        "",
        f"Measured by `benchmarks/torch_multistage.py{' --gpu' if meta['gpu'] else ''}{' --smoke' if meta['smoke'] else ''}` "
        f"on {meta['gpu'] or 'no GPU'}, {meta['cpus']} CPUs ({meta['platform']}), {meta['date']}; "
        f"load average {meta['load_avg_before']} → {meta['load_avg']}. Python {meta['python']}, torch {meta['torch']}, "
        f"numpy {meta['numpy']}, faiss {meta['faiss']}, cupy {meta['cupy']}, embedded Triton "
        f"(nvidia-pytriton 0.7.0), torch intra-op threads {meta['intra_op_threads']}, OMP_NUM_THREADS "
        f"{meta['omp_num_threads']}.",
        "",
        "Graph `full`: request (user_id, 20 most recent seen items) → PredictPyTorch query tower → QueryFaiss "
        f"(flat IP, top {RETRIEVE}) → FilterCandidates(seen) → UnrollFeatures → PredictPyTorch ranker → TopK({TOP}); "
        f"{meta['candidates_ranked_per_user']} candidates ranked per user. Graph `rank`: UnrollFeatures → ranker → "
        f"TopK({TOP}) on exactly {RANKED} candidates per user. Data: MovieLens-100K-shaped, generated "
        f"({N_USERS} users, {N_ITEMS} items, {meta['interactions']} interactions); models trained here on the CPU "
        f"({meta['epochs']} epochs, {q['train_s']} s): held-out recall@100 of retrieval {q['retrieval_recall_at_100']} "
        f"(popularity {q['popularity_recall_at_100']}, random {q['random_recall_at_100']}), ranker AUC {q['ranker_auc']}.",
        "",
        f"Timed round-robin (every path once per iteration, same request), {meta['iters']} requests per path per "
        f"repeat, {meta['repeats']} repeat(s): median of the per-repeat figures; ranges are per-repeat p50 / p99. "
        "users/s = users per request ÷ mean latency (one request at a time). Served = HTTP from a client in "
        "the same host, inputs prebuilt, the response decoded into a Table.",
        "",
    ]
    head = meta.get("headline")
    if head:
        lines += ["**Headline.** " + head, ""]
    lines += ["| graph | users/request | path | p50 ms | p95 ms | p99 ms | users/s | p50 range | p99 range | served = in-process |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        eq = {True: "✓", False: "✗", "": ""}[r["equal_to_in_process"]]
        lines.append(f"| {r['graph']} | {r['users']} | {r['path']} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} | "
                     f"{r['p99_ms']:.3f} | {r['users_per_s']:.0f} | {r['p50_range_ms']} | {r['p99_range_ms']} | {eq} |")
    lines += ["", "Checks (over every request of the pool, before timing):", ""]
    for key, c in meta["checks"].items():
        if "error" in c:
            lines.append(f"- {key}: FAILED: {c['error']}")
            continue
        lines.append(f"- {key}: {'equal' if c['equal'] else 'NOT equal'} (rows with identical top-{TOP} ids "
                     f"{c['rows_same_ids']:.3f}, max score difference {c['max_score_diff']:.2e})")
    lines += ["", "## faiss on the GPU", "", FAISS_GPU_FINDING, ""]
    if meta.get("gpu_tests"):
        lines += ["## GPU tests in the same run", "", meta["gpu_tests"], ""]
    path = out / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def headline(rows: list[dict[str, Any]]) -> str | None:
    cell = {(r["graph"], r["users"], r["path"]): r for r in rows}
    g, c = cell.get(("rank", 64, "served/KIND_GPU")), cell.get(("rank", 64, "served/KIND_CPU"))
    fg, fc = cell.get(("full", 64, "served/KIND_GPU")), cell.get(("full", 64, "served/KIND_CPU"))
    if not (g and c and fg and fc):
        return None
    verdict = "meets" if g["p99_ms"] < 5 else "misses"
    return (f"ranking 64 users × {RANKED} candidates served KIND_GPU p50 {g['p50_ms']:.2f} / p99 {g['p99_ms']:.2f} ms "
            f"({verdict} the p99 < 5 ms target) vs KIND_CPU p50 {c['p50_ms']:.2f} / p99 {c['p99_ms']:.2f} ms; the whole "
            f"pipeline at 64 users KIND_GPU p50 {fg['p50_ms']:.2f} / p99 {fg['p99_ms']:.2f} ms, {fg['users_per_s']:.0f} users/s "
            f"vs KIND_CPU p50 {fc['p50_ms']:.2f} / p99 {fc['p99_ms']:.2f} ms, {fc['users_per_s']:.0f} users/s.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="add the CUDA cells and the KIND_GPU instance (needs a GPU)")
    parser.add_argument("--smoke", action="store_true", help="seconds: 1 epoch, a few requests, one repeat")
    parser.add_argument("--no-served", action="store_true", help="in-process cells only (no Triton)")
    parser.add_argument("--iters", type=int, default=300, help="timed requests per path per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="torch intra-op threads (in-process and served)")
    parser.add_argument("--users", default="1,64", help="users per request, comma-separated")
    parser.add_argument("--gpu-tests", default="", help="a line about the GPU tests of the same run, for the results file")
    parser.add_argument("--out", type=Path, default=None, help="results directory (default benchmarks/results; "
                        "with --smoke a temporary directory)")
    args = parser.parse_args(argv)
    if args.gpu and not torch.cuda.is_available():
        parser.error(f"--gpu: torch {torch.__version__} sees no CUDA device; run without --gpu on a CPU machine")
    iters, warmup, repeats, epochs, pool = args.iters, 20, args.repeats, args.epochs, 8
    if args.smoke:
        iters, warmup, repeats, epochs, pool = 3, 1, 1, 1, 2
    threads = max(1, min(args.threads, os.cpu_count() or 1))
    torch.set_num_threads(threads)
    user_counts = [int(u) for u in args.users.split(",") if u.strip()]
    load_before = [round(x, 2) for x in os.getloadavg()]
    name = f"{RUN_ID}_gpu" if args.gpu else RUN_ID
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="funnel-torch-ms-")))
        out = args.out or (tmp / "results" if args.smoke else RESULTS)
        data = make_data()
        query, item_tower, ranker, q = train_models(data, epochs, fraction=0.1 if args.smoke else 1.0)
        print(f"trained in {q['train_s']} s: {q}", flush=True)
        paths = save_models(tmp, data, query, item_tower, ranker)
        builders = {"full": full_graph, "rank": rank_graph}
        rows: list[dict[str, Any]] = []
        checks: dict[str, Any] = {}
        reqs = {u: requests(data, paths, u, pool, seed=u) for u in user_counts}
        ranked = [len(v) for u in user_counts for r in reqs[u]["full"]
                  for v in retrieval_graph(paths).transform(r)["item_id"].to_lists()]
        for graph, build in builders.items():
            ensembles = {"cpu": build(paths, "cpu", threads)}
            if args.gpu:
                ensembles["cuda"] = build(paths, "instance", threads)
            servers: dict[str, Any] = {}
            if not args.no_served:
                from funnel_triton import TritonServer  # noqa: PLC0415

                for dev, kind in (("cpu", "cpu"), ("cuda", "gpu")):
                    if dev in ensembles:
                        repo = ensembles[dev].export(tmp / f"repo-{graph}-{kind}", instance_kind=kind)
                        started = time.perf_counter()
                        try:
                            servers[f"KIND_{kind.upper()}"] = stack.enter_context(TritonServer(repo, timeout=300))
                        except Exception as exc:  # noqa: BLE001 - recorded; the other cells still run
                            checks[f"{graph}: served/KIND_{kind.upper()} start"] = {
                                "equal": False, "rows_same_ids": 0.0, "max_score_diff": None,
                                "error": f"{type(exc).__name__}: {exc}"[:2000]}
                            print(f"{graph}: KIND_{kind.upper()} server failed to start: {exc}", file=sys.stderr, flush=True)
                            continue
                        print(f"{graph}: KIND_{kind.upper()} server ready in {time.perf_counter() - started:.1f} s", flush=True)
            for users in user_counts:
                cells, chk = run_cells(graph, ensembles, servers, reqs[users][graph], users, iters, warmup, repeats)
                rows += cells
                checks.update({f"{graph} ×{users}: {k}": v for k, v in chk.items()})
                for r in cells:
                    print(f"{graph:<5} u={users:<3} {r['path']:<17} p50 {r['p50_ms']:8.3f}  p99 {r['p99_ms']:8.3f} ms  "
                          f"{r['users_per_s']:9.1f} users/s  served=in-process {r['equal_to_in_process']}", flush=True)
            for server in servers.values():
                server.stop()
        import faiss  # noqa: PLC0415

        try:
            import cupy  # noqa: PLC0415

            cupy_version = cupy.__version__
        except ImportError:
            cupy_version = None
        meta = {
            **machine(), "load_avg_before": load_before, "load_avg": [round(x, 2) for x in os.getloadavg()],
            "gpu": torch.cuda.get_device_name(0) if args.gpu else None, "smoke": args.smoke,
            "torch": torch.__version__, "numpy": np.__version__, "faiss": faiss.__version__, "cupy": cupy_version,
            "python": platform.python_version(), "intra_op_threads": threads,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "iters": iters, "warmup": warmup,
            "repeats": repeats, "epochs": epochs, "request_pool": pool, "interactions": int(len(data["train_u"]) + len(data["test_u"])),
            "candidates_ranked_per_user": f"{min(ranked)}–{max(ranked)} (mean {np.mean(ranked):.1f})",
            "quality": q, "checks": checks, "faiss_gpu": FAISS_GPU_FINDING, "headline": headline(rows),
            "gpu_tests": args.gpu_tests or None,
        }
        write_results(name, rows, meta, out=out)
        md = write_markdown(Path(out), name, rows, meta)
        print(md.read_text())
        print(f"wrote {md} and {md.with_suffix('.json')}")
    bad = [k for k, c in checks.items() if "served/" in k and not c["equal"]]
    if bad:
        print("served results differ from in-process: " + "; ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
