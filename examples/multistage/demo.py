"""``python -m examples.multistage``: build, evaluate and serve the multi-stage recommender."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from funnel.table import Table, to_numpy

from examples.multistage.pipeline import DEFAULT_TEMPERATURE, build_ensemble, evaluate
from examples.multistage.prepare import Artifacts, load_split, prepare

__all__ = ["main", "serve_and_recommend", "DEFAULT_WORKDIR"]

DEFAULT_WORKDIR = Path(__file__).resolve().parent / "work"
DEMO_USERS = (1, 42, 196, 500, 655)


def _say(message: str) -> None:
    print(message, flush=True)


def serve_and_recommend(
    art: Artifacts, repo: Path, users: list[int], temperature: float, seed: int = 0, log=_say
) -> tuple[Table, Table]:
    """Export the pipeline to ``repo`` (executor mode), serve it on the embedded Triton and
    send ONE request holding ``users``; returns (served output, in-process output).

    Both sides start from a freshly built sampler with the same ``seed``, so their outputs
    are equal.
    """
    from funnel_triton import TritonServer  # noqa: PLC0415

    ens = build_ensemble(art, temperature=temperature, seed=seed)
    ens.export(repo, mode="executor", overwrite=True)
    log(f"[export] Triton model repository (executor mode): {repo}")
    request = Table({"user_id": np.asarray(users, dtype=np.int64)})
    log("[serve] starting the embedded Triton server (loads TensorFlow, Feast and FAISS inside it) ...")
    t0 = time.perf_counter()
    with TritonServer(repo, timeout=180) as server:
        log(f"[serve] ready in {time.perf_counter() - t0:.1f} s at {server.http_url}; one request for {len(users)} users")
        t1 = time.perf_counter()
        served = server.infer(request, model="funnel")
        log(f"[serve] answered in {(time.perf_counter() - t1) * 1000:.1f} ms; stopping the server")
    local = ens.transform(request)
    return served, local


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see ``--help``)."""
    parser = argparse.ArgumentParser(prog="python -m examples.multistage", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where data, models and the export go")
    parser.add_argument("--rebuild", action="store_true", help="retrain and rebuild everything in the work dir")
    parser.add_argument("--users", type=int, nargs="+", default=list(DEMO_USERS), help="user ids of the served request")
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE, help="SoftmaxSampling temperature")
    parser.add_argument("--seed", type=int, default=0, help="SoftmaxSampling seed")
    parser.add_argument("--epochs", type=int, default=8, help="two-tower training epochs")
    parser.add_argument("--no-eval", action="store_true", help="skip the recall evaluation")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.perf_counter()

    _say(f"== 1/4 data, models, feature store, index (work dir {args.workdir})")
    art = prepare(args.workdir, rebuild=args.rebuild, epochs=args.epochs, log=_say)

    _say("== 2/4 the graph")
    ens = build_ensemble(art, temperature=args.temperature, seed=args.seed)
    _say(f"  {ens!r}")
    _say(f"  SoftmaxSampling temperature {args.temperature} over the ranker's logits, seed {args.seed}")
    repo = art.workdir / "triton_repo"
    picture = ens.render(art.workdir / "pipeline.svg", title="MovieLens-100K multi-stage recommender")
    _say(f"[graph] picture: {picture}")

    _say("== 3/4 serving one batched request on Triton")
    served, local = serve_and_recommend(art, repo, args.users, args.temperature, args.seed)
    titles = art.title_map()
    ids = to_numpy(served["ordered_ids"])
    scores = to_numpy(served["ordered_scores"])
    for user, row, row_scores in zip(args.users, ids, scores, strict=False):
        _say(f"\n  top-10 for user {user}:")
        for rank, (item, score) in enumerate(zip(row, row_scores, strict=False), 1):
            if item >= 0:
                _say(f"    {rank:2d}. {titles.get(int(item), f'item {item}')}  ({score:.2f})")
    same = np.array_equal(ids, to_numpy(local["ordered_ids"]))
    _say(f"\n  served output equals the in-process run of the same graph and seed: {same}")

    if not args.no_eval:
        _say("\n== 4/4 quality on held-out interactions (in-process ensemble, all users, batched)")
        split = load_split(art.num_users, art.num_items)
        quality = evaluate(art, split, temperature=args.temperature, seed=args.seed, log=lambda m: None)
        _say(quality.report())
        verdict = "beats" if quality.pipeline_recall_10 > quality.popularity_recall_10 else "does NOT beat"
        _say(f"  → the pipeline {verdict} popularity on recall@10")

    _say(f"\nexport:  {repo}\npicture: {picture}\ndone in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
