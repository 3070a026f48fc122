"""``python -m examples.session``: the session-based recommender, ETL → XLNet → Triton.

MovieLens-100K cut into click sessions, the Transformers4Rec example's NVTabular workflow
(ported by changing its import to funnel_workflow), an XLNet masked-LM next-item model
(funnel_torch.session), and the served graph: raw interaction rows in, top-20 next movies
per session out, on the embedded Triton server.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from funnel import Table

from examples.session.data import titles
from examples.session.pipeline import Settings, build_ensemble, example_request, prepare, quality

__all__ = ["main", "serve", "DEFAULT_WORKDIR"]

DEFAULT_WORKDIR = Path(__file__).resolve().parent / "work"
GRAPH_PICTURE = Path(__file__).resolve().parent / "graph.svg"


def _say(message: str) -> None:
    print(message, flush=True)


def serve(ensemble, repo: Path, request: Table, log=_say) -> Table:
    """Export ``ensemble`` to ``repo``, serve it on the embedded Triton, send ``request``."""
    from funnel_triton import TritonServer  # noqa: PLC0415

    ensemble.export(repo, mode="executor", overwrite=True)
    log(f"[export] Triton model repository (executor mode): {repo}")
    # the workflow's lambdas and ItemRecency are code: the served model may load them only
    # because this environment opts in explicitly (FUNNEL_TRUST_CODE=1, docs/reliability.md)
    t0 = time.perf_counter()
    with TritonServer(repo, timeout=180, env={"FUNNEL_TRUST_CODE": "1"}) as server:
        log(f"[serve] ready in {time.perf_counter() - t0:.1f} s at {server.http_url}; one request of "
            f"{request.num_rows} raw rows")
        t1 = time.perf_counter()
        served = server.infer(request, model="funnel")
        log(f"[serve] answered in {(time.perf_counter() - t1) * 1000:.1f} ms; stopping the server")
    return served


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see ``--help``)."""
    parser = argparse.ArgumentParser(prog="python -m examples.session", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where data, model and export go")
    parser.add_argument("--epochs", type=int, default=Settings.epochs, help="training epochs")
    parser.add_argument("--max-users", type=int, default=None, help="a reduced slice: the first N users")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    settings = Settings(epochs=args.epochs, max_users=args.max_users)

    _say(f"== 1/4 sessions, workflow, model (work dir {args.workdir})")
    prep = prepare(args.workdir, settings, log=_say)

    _say("\n== 2/4 quality on the held-out days (full ranking, the session's items excluded)")
    scores = quality(prep, k=20)
    _say(f"  {'':32s} {'Recall@20':>10s} {'NDCG@20':>10s}")
    for name, m in scores.items():
        _say(f"  {name:32s} {m['recall@20']:10.3f} {m['ndcg@20']:10.3f}")
    model_r = scores["XLNet (funnel_torch.session)"]["recall@20"]
    pop_r, trans_r = scores["popularity"]["recall@20"], scores["last-item transitions"]["recall@20"]
    _say(f"  → the model {'beats' if model_r > pop_r else 'does NOT beat'} popularity and "
         f"{'beats' if model_r > trans_r else 'does not beat'} the transition baseline on Recall@20")

    _say("\n== 3/4 the served graph")
    ensemble = build_ensemble(prep, top_k=20)
    repo = args.workdir / "triton_repo"
    picture = ensemble.render(args.workdir / "session.svg", title="MovieLens-100K session-based recommender")
    _say(f"  {ensemble!r}\n[graph] picture: {picture}")

    _say("\n== 4/4 one request of raw interaction rows on Triton")
    batch = example_request(prep.raw)
    request_df = batch[prep.workflow.input_schema.column_names]
    request = Table.from_pandas(request_df.reset_index(drop=True))
    served = serve(ensemble, repo, request)
    local = ensemble.transform(request)
    names = titles()
    sessions = prep.workflow.decode("session_id", np.asarray(served["session_id"]))
    recs = served["item_ids"].to_lists()
    for sid, items in zip(sessions, recs, strict=True):
        clicked = batch[batch.session_id == sid].sort_values("timestamp").item_id.tolist()
        _say(f"\n  session {sid}: clicked {len(clicked)}")
        for item in clicked[-5:]:
            _say(f"      · {names.get(int(item), item)}")
        _say("    next (top 5):")
        for rank, item in enumerate(items[:5], 1):
            _say(f"    {rank}. {names.get(int(item), item)}")
    same = served["item_ids"].to_lists() == local["item_ids"].to_lists() and np.allclose(
        np.asarray(served["item_id_scores"].values), np.asarray(local["item_id_scores"].values), rtol=1e-5)
    _say(f"\n  served output equals the in-process run of the same graph: {same}")
    _say(f"\nexport:  {repo}\npicture: {picture}\ndone in {time.perf_counter() - t0:.0f} s")
    return 0 if same else 1


if __name__ == "__main__":
    os.environ.setdefault("TQDM_MININTERVAL", "1")
    sys.exit(main())
