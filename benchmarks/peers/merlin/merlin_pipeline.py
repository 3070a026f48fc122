"""The multistage pipeline on NVIDIA Merlin Systems 23.08: the peer funnel is compared with.

Runs inside ``.venv-merlin`` (benchmarks/peers/merlin/setup.sh builds it); started by
``benchmarks/multistage.py --peers merlin``, which gives it the work directory funnel's run
prepared (examples/multistage/prepare.py) so both use the same data split, the same
models, the same FAISS index and the same request sequence:

- the Feast repository is rebuilt for Feast 0.31 from the same parquet sources (Feast 0.67's
  registry is not readable by 0.31); Merlin's QueryFeast needs each entity named as its join
  key (``user_id``/``item_id``);
- the two TensorFlow SavedModels are the very files funnel serves (TF 2.14 loads them);
- the FAISS index file is the same (``IndexIDMap`` over a flat inner-product index);
- the graph is the Merlin multi-stage notebook's, with Merlin's own ``FilterCandidates`` for
  the seen-items filter funnel's graph has:
  QueryFeast(user) → PredictTensorflow(query tower) → QueryFaiss(top-100) →
  FilterCandidates(seen) → QueryFeast(items) → UnrollFeatures → PredictTensorflow(ranker) →
  SoftmaxSampling(top-10).

The embedded Triton server has no TensorFlow backend, so the two ``PredictTensorflow`` steps
run inside Merlin's Python executor model (``PredictTensorflowInPython``: Merlin's operator,
plus saving/loading its SavedModel as an artifact) instead of as separate
``tensorflow_savedmodel`` models. Merlin's ``SoftmaxSampling`` multiplies scores by its
temperature where funnel divides: it gets 1 / funnel's temperature.

    python merlin_pipeline.py build --workdir W --out O     # feature repo + Triton export
    python merlin_pipeline.py bench --workdir W --out O --requests O/requests.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"  # what Merlin's pins allow on 3.11
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

USER_FEATURES = ("user_id", "age", "gender", "occupation")
RANKER_COLUMNS = ("user_id", "age", "gender", "occupation", "item_id", "item_year", "item_genres", "item_popularity")
FUNNEL_TEMPERATURE = 0.1  # examples.multistage.pipeline.DEFAULT_TEMPERATURE
VIEWS = {"user_features": "user_id", "item_features": "item_id"}


# -- Feast 0.31 repository over the same parquet sources ----------------------------------------
def build_feature_repo(workdir: Path, out: Path) -> Path:
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Array, Float32, Int64

    repo = out / "feature_repo"
    if (repo / "data" / "online.db").is_file():
        return repo
    data = repo / "data"
    data.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        "project: merlin_peer\nregistry: data/registry.db\nprovider: local\n"
        "online_store:\n  type: sqlite\n  path: data/online.db\nentity_key_serialization_version: 2\n"
    )
    objects = []
    lo, hi = None, None
    for view, key in VIEWS.items():
        src = workdir / "feature_repo" / "data" / f"{view}.parquet"
        frame = pd.read_parquet(src)
        if key == "item_id":  # Merlin's QueryFaiss / FilterCandidates emit int32 ids: an INT32 entity
            frame[key] = frame[key].astype(np.int32)
        frame.to_parquet(data / f"{view}.parquet", index=False)
        ts = frame["event_timestamp"]
        lo = ts.min() if lo is None else min(lo, ts.min())
        hi = ts.max() if hi is None else max(hi, ts.max())
        fields = []
        for col in frame.columns:
            if col in (key, "event_timestamp"):
                continue
            first = frame[col].iloc[0]
            if isinstance(first, (list, np.ndarray)):
                dtype = Array(Int64)
            elif frame[col].dtype.kind == "f":
                dtype = Float32
            else:
                dtype = Int64
            fields.append(Field(name=col, dtype=dtype))
        value_type = ValueType.INT32 if key == "item_id" else ValueType.INT64
        entity = Entity(name=key, join_keys=[key], value_type=value_type)  # Merlin: name == join key
        objects += [entity, FeatureView(
            name=view, entities=[entity], ttl=dt.timedelta(days=3650), schema=fields,
            source=FileSource(path=str(data / f"{view}.parquet"), timestamp_field="event_timestamp"),
        )]
    store = FeatureStore(repo_path=str(repo))
    store.apply(objects)
    store.materialize(lo.to_pydatetime() - dt.timedelta(days=1), hi.to_pydatetime() + dt.timedelta(days=1))
    return repo


# -- Merlin's PredictTensorflow, run inside the Python executor ---------------------------------
def _predict_tf_class():
    import tensorflow as tf
    from merlin.systems.dag.ops.tensorflow import PredictTensorflow

    class _Signature:
        """The SavedModel's serving signature as Merlin calls a model: one dict in, a dict out
        (inputs cast to the signature's dtypes: Merlin's FAISS and filter ops emit int32 ids)."""

        def __init__(self, loaded):
            self.loaded = loaded
            self.fn = loaded.signatures["serving_default"]
            _, spec = self.fn.structured_input_signature
            self.dtypes = {k: v.dtype for k, v in spec.items()}

        def __call__(self, inputs):
            return self.fn(**{k: tf.cast(tf.reshape(inputs[k], [-1]), d) for k, d in self.dtypes.items()})

    class PredictTensorflowInPython(PredictTensorflow):
        """Merlin's PredictTensorflow whose SavedModel travels as an executor artifact."""

        def __init__(self, path, accept=None):
            super().__init__(str(path))  # tf.saved_model.load + schemas from the signature
            self.model = _Signature(self.model)
            # columns Merlin's upstream ops produce with another dtype (ids: int32), cast on the way in
            from merlin.schema import ColumnSchema

            for name, dtype in (accept or {}).items():
                col = self.input_schema[name]
                self.input_schema[name] = ColumnSchema(name, dtype=dtype, dims=col.shape.dims, tags=col.tags)
            self.dirname = f"tf_{Path(path).name}"

        def save_artifacts(self, artifact_path):
            shutil.copytree(self.path, Path(artifact_path) / self.dirname, dirs_exist_ok=True)

        def load_artifacts(self, artifact_path):
            # Merlin's Graph() calls this with "" at construction: keep the model then
            if artifact_path or getattr(self, "model", None) is None:
                src = Path(artifact_path) / self.dirname if artifact_path else Path(self.path)
                self.model = _Signature(tf.saved_model.load(str(src)))

    return PredictTensorflowInPython


def build_ensemble(workdir: Path, repo: Path, topk: int = 10, retrieval_k: int = 100):
    from feast import FeatureStore
    from merlin.schema import ColumnSchema, Schema
    from merlin.systems.dag.ensemble import Ensemble
    from merlin.systems.dag.ops.faiss import QueryFaiss
    from merlin.systems.dag.ops.feast import QueryFeast
    from merlin.systems.dag.ops.session_filter import FilterCandidates
    from merlin.systems.dag.ops.softmax_sampling import SoftmaxSampling
    from merlin.systems.dag.ops.unroll_features import UnrollFeatures

    predict = _predict_tf_class()
    store = FeatureStore(repo_path=str(repo))
    user_features = ["user_id"] >> QueryFeast.from_feature_view(store=store, view="user_features", column="user_id", include_id=True)
    user_cols = user_features[list(USER_FEATURES)]
    retrieval = (
        user_cols
        >> predict(workdir / "models" / "query_tower")
        >> QueryFaiss(str(workdir / "index" / "items.faiss"), topk=retrieval_k)
    )
    filtered = retrieval["candidate_ids"] >> FilterCandidates(filter_out=user_features["seen_item_ids"])
    item_features = filtered >> QueryFeast.from_feature_view(
        store=store, view="item_features", column="filtered_ids", output_prefix="item", include_id=True
    )
    combined = item_features >> UnrollFeatures("item_id", user_cols)
    ranking = combined[list(RANKER_COLUMNS)] >> predict(workdir / "models" / "ranker", accept={"item_id": np.int32})
    ordering = combined["item_id"] >> SoftmaxSampling(
        relevance_col=ranking["relevance"], topk=topk, temperature=1.0 / FUNNEL_TEMPERATURE
    )
    return Ensemble(ordering, Schema([ColumnSchema("user_id", dtype=np.int64)]))


# -- the same steps written by hand on Merlin's stack (its own floor) ---------------------------
class Floor:
    """Direct Feast 0.31 / TF 2.14 / FAISS 1.7.4 / numpy 1.24 calls, the steps of funnel's floor."""

    def __init__(self, workdir: Path, repo: Path, retrieval_k: int = 100, topk: int = 10):
        import faiss
        import tensorflow as tf
        from feast import FeatureStore

        self.store = FeatureStore(repo_path=str(repo))
        self.user_refs = [f"user_features:{f}" for f in ("age", "gender", "occupation", "seen_item_ids")]
        self.item_refs = [f"item_features:{f}" for f in ("year", "genres", "popularity")]
        self.query_fn = tf.saved_model.load(str(workdir / "models" / "query_tower")).signatures["serving_default"]
        self.rank_fn = tf.saved_model.load(str(workdir / "models" / "ranker")).signatures["serving_default"]
        self.index = faiss.read_index(str(workdir / "index" / "items.faiss"))
        self.k, self.topk = retrieval_k, topk
        self.rng = np.random.default_rng(0)
        self.tf = tf

    def __call__(self, user_ids: np.ndarray):
        tf = self.tf
        b = user_ids.shape[0]
        resp = self.store.get_online_features(features=self.user_refs, entity_rows=[{"user_id": int(u)} for u in user_ids]).to_dict()
        users = {"user_id": user_ids}
        for f in ("age", "gender", "occupation"):
            users[f] = np.array([0 if v is None else v for v in resp[f]], dtype=np.int64)
        seen_rows = [() if v is None else v for v in resp["seen_item_ids"]]
        seen_len = np.fromiter((len(r) for r in seen_rows), dtype=np.int64, count=b)
        seen = np.fromiter(itertools.chain.from_iterable(seen_rows), dtype=np.int64, count=int(seen_len.sum()))
        q = self.query_fn(**{k: tf.constant(users[k]) for k in USER_FEATURES})["query_embedding"].numpy()
        _, cand = self.index.search(np.ascontiguousarray(q, dtype=np.float32), self.k)
        span = max(int(cand.max(initial=0)), int(seen.max(initial=0))) + 1
        table = np.ones((b, span), dtype=bool)
        table[np.repeat(np.arange(b), seen_len), seen] = False
        valid = cand >= 0
        keep = valid & table[np.arange(b)[:, None], np.where(valid, cand, 0)]
        flat = cand[keep]
        lengths = np.count_nonzero(keep, axis=1).astype(np.int64)
        if b == 1:
            unique, inverse = flat, slice(None)
        else:
            unique, inverse = np.unique(flat, return_inverse=True)
        resp = self.store.get_online_features(features=self.item_refs, entity_rows=[{"item_id": int(i)} for i in unique]).to_dict()
        feats = {
            "item_id": flat,
            "item_year": np.array([0 if v is None else v for v in resp["year"]], dtype=np.int64)[inverse],
            "item_genres": np.array([0 if v is None else v for v in resp["genres"]], dtype=np.int64)[inverse],
            "item_popularity": np.array([0.0 if v is None else v for v in resp["popularity"]], dtype=np.float32)[inverse],
        }
        for f in USER_FEATURES:
            feats[f] = np.repeat(users[f], lengths)
        scores = self.rank_fn(**{k: tf.constant(feats[k]) for k in RANKER_COLUMNS})["relevance"].numpy().reshape(-1).astype(np.float64)
        width = int(lengths.max(initial=0))
        keys = np.full((b, width), -np.inf)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        rix = np.repeat(np.arange(b), lengths)
        cix = np.arange(flat.size) - np.repeat(offsets[:-1], lengths)
        keys[rix, cix] = scores / FUNNEL_TEMPERATURE + self.rng.gumbel(size=scores.size)
        order = np.argsort(-keys, axis=1)[:, : self.topk]
        valid = order < lengths[:, None]
        src = np.minimum(offsets[:-1, None] + order, max(flat.size - 1, 0))
        return np.where(valid, flat[src], -1), np.where(valid, scores[src], np.nan).astype(np.float32)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for d in ("merlin-systems", "merlin-core", "nvtabular", "numpy", "pandas", "tensorflow-cpu", "feast", "faiss-cpu", "protobuf"):
        try:
            out[d] = md.version(d)
        except md.PackageNotFoundError:
            pass
    return out


def cmd_build(args) -> int:
    from merlin.systems.dag.runtimes.triton import TritonExecutorRuntime

    workdir, out = Path(args.workdir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    repo = build_feature_repo(workdir, out)
    ens = build_ensemble(workdir, repo)
    export = out / "repo"
    shutil.rmtree(export, ignore_errors=True)
    ens.export(str(export), runtime=TritonExecutorRuntime())
    cfg = (export / "executor_model" / "config.pbtxt").read_text()
    info = {"build_s": round(time.perf_counter() - t0, 1), "model": "executor_model", "config": cfg,
            "outputs": list(ens.output_schema.column_names), "versions": _versions()}
    (out / "build.json").write_text(json.dumps(info, indent=2))
    print(json.dumps({k: v for k, v in info.items() if k != "config"}), flush=True)
    return 0


def _table(users: np.ndarray):
    from merlin.table import TensorTable

    return TensorTable({"user_id": np.asarray(users, dtype=np.int64).reshape(-1, 1)})


def cmd_bench(args) -> int:
    """In-process: Merlin's Ensemble.transform and Merlin's stack by hand, interleaved request by request."""
    workdir, out = Path(args.workdir), Path(args.out)
    repo = out / "feature_repo"
    ens = build_ensemble(workdir, repo)
    floor = Floor(workdir, repo)
    requests = [np.asarray(r, dtype=np.int64) for r in json.loads(Path(args.requests).read_text())]
    merlin = lambda r: ens.transform(_table(r))  # noqa: E731
    paths = {"merlin-floor": floor, "merlin-in-process": merlin}
    for r in requests[: args.warmup]:
        for fn in paths.values():
            fn(r)
    gc.collect()
    gc.freeze()
    repeats = []
    for _ in range(args.repeats):
        lat = {n: [] for n in paths}
        for i, r in enumerate(requests[args.warmup:]):
            for n in (list(paths) if i % 2 == 0 else list(paths)[::-1]):
                t = time.perf_counter()
                paths[n](r)
                lat[n].append(time.perf_counter() - t)
        repeats.append(lat)
    # what a request with several users does (Merlin's graph is built for one user per request)
    multi = {}
    for n_users in (4,):
        users = np.asarray(requests[0].tolist() + [int(x[0]) for x in requests[1:n_users]], dtype=np.int64)
        try:
            res = ens.transform(_table(users))
            ids = np.asarray(res["ordered_ids"].values)
            multi[str(n_users)] = {"ok": True, "ordered_ids_shape": list(ids.shape),
                                   "note": "one list for all users together (pooled)" if ids.shape[0] == 1 else "one list per user"}
        except Exception as exc:  # noqa: BLE001 - recorded as the result
            lines = [x.strip() for x in str(exc).splitlines() if x.strip() and "stack traces" not in x]
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/merlin/" in f.filename]
            multi[str(n_users)] = {"ok": False, "error": f"{type(exc).__name__}: " + " | ".join(lines[-2:])[-400:],
                                   "where": f"{frames[-1].filename.split('site-packages/')[-1]}:{frames[-1].lineno}" if frames else "?"}
    (out / "inprocess.json").write_text(json.dumps({"repeats": repeats, "multi_user": multi, "versions": _versions()}))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--workdir", required=True)
    b.add_argument("--out", required=True)
    m = sub.add_parser("bench")
    m.add_argument("--workdir", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--requests", required=True, help="JSON list of requests (lists of user ids)")
    m.add_argument("--warmup", type=int, default=10)
    m.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    return {"build": cmd_build, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
