"""The Transformers4Rec example's session workflow on NVTabular 23.08, served as Merlin's TransformWorkflow.

Runs inside ``.venv-merlin`` (benchmarks/peers/merlin/setup.sh; the same pins). Started by
``benchmarks/peers/nvtabular/run.py``, which writes the clicks and the request it gets from
funnel_workflow.testing.make_clicks (the data benchmarks/workflow.py uses), so both workflows
see the same rows.

The workflow is section 2 of shared/design/session-example.md with ``Categorify()`` instead
of ``Categorify(start_index=1)`` (NVTabular 23.06+ refuses ``start_index``),
``pd.to_datetime`` for ``cudf.to_datetime`` (CPU, pandas), and ``ItemRecency.dependencies``
as a property (merlin-core 23.08 reads it as one; the example defines a method).

    python nvt_workflow.py build --clicks C.parquet --out O     # fit, save, export to Triton
    python nvt_workflow.py bench --out O --request R.parquet    # in-process timings
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def build_workflow():
    import nvtabular as nvt

    class ItemRecency(nvt.ops.Operator):
        def transform(self, columns, gdf):
            for column in columns.names:
                col = gdf[column]
                item_first_timestamp = gdf["itemid_ts_first"]
                delta_days = (col - item_first_timestamp) / (60 * 60 * 24)
                gdf[column + "_age_days"] = delta_days * (delta_days >= 0)
            return gdf

        def output_column_names(self, columns):
            return nvt.ColumnSelector([column + "_age_days" for column in columns.names])

        @property  # a method in the example; merlin-core 23.08 reads it as a property
        def dependencies(self):
            return ["itemid_ts_first"]

    cat_feats = nvt.ColumnSelector(["session_id", "category", "item_id"]) >> nvt.ops.Categorify()
    session_ts = nvt.ColumnSelector(["timestamp"])
    session_time = session_ts >> nvt.ops.LambdaOp(lambda col: pd.to_datetime(col, unit="s")) >> nvt.ops.Rename(name="event_time_dt")
    sessiontime_weekday = session_time >> nvt.ops.LambdaOp(lambda col: col.dt.weekday) >> nvt.ops.Rename(name="et_dayofweek")

    def get_cycled_feature_value_sin(col, max_value):
        value_scaled = (col + 0.000001) / max_value
        return np.sin(2 * np.pi * value_scaled)

    weekday_sin = sessiontime_weekday >> (lambda col: get_cycled_feature_value_sin(col + 1, 7)) >> nvt.ops.Rename(name="et_dayofweek_sin")
    recency_features = session_ts >> ItemRecency()
    recency_features_norm = recency_features >> nvt.ops.LogOp() >> nvt.ops.Normalize() >> nvt.ops.Rename(name="product_recency_days_log_norm")
    time_features = session_time + sessiontime_weekday + weekday_sin + recency_features_norm
    features = nvt.ColumnSelector(["timestamp", "session_id"]) + cat_feats + time_features
    groupby_features = features >> nvt.ops.Groupby(
        groupby_cols=["session_id"],
        sort_cols=["timestamp"],
        aggs={
            "item_id": ["list", "count"],
            "category": ["list"],
            "timestamp": ["first"],
            "event_time_dt": ["first"],
            "et_dayofweek_sin": ["list"],
            "product_recency_days_log_norm": ["list"],
        },
        name_sep="-",
    )
    groupby_features_list = groupby_features["item_id-list", "category-list", "et_dayofweek_sin-list", "product_recency_days_log_norm-list"]
    groupby_features_truncated = groupby_features_list >> nvt.ops.ListSlice(0, 20) >> nvt.ops.Rename(postfix="_seq")
    day_index = (
        groupby_features["event_time_dt-first"]
        >> nvt.ops.LambdaOp(lambda col: (col - col.min()).dt.days + 1)
        >> nvt.ops.Rename(f=lambda col: "day_index")
    )
    selected_features = groupby_features["session_id", "item_id-count"] + groupby_features_truncated + day_index
    filtered_sessions = selected_features >> nvt.ops.Filter(f=lambda df: df["item_id-count"] >= 2)
    return nvt.Workflow(filtered_sessions)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    return {d: md.version(d) for d in ("nvtabular", "merlin-systems", "merlin-core", "numpy", "pandas", "dask")}


def cmd_build(args) -> int:
    import nvtabular as nvt
    from merlin.systems.dag.ensemble import Ensemble
    from merlin.systems.dag.ops.workflow import TransformWorkflow

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clicks = pd.read_parquet(args.clicks)
    workflow = build_workflow()
    t0 = time.perf_counter()
    workflow.fit(nvt.Dataset(clicks))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sessions = workflow.transform(nvt.Dataset(clicks)).compute()
    transform_s = time.perf_counter() - t0
    shutil.rmtree(out / "workflow", ignore_errors=True)
    workflow.save(str(out / "workflow"))
    # served without the Filter's effect on the request: the example's export serves the whole
    # workflow, Filter included (it drops one-click sessions at serving, as users see it)
    ens = Ensemble(workflow.input_schema.column_names >> TransformWorkflow(workflow), workflow.input_schema)
    shutil.rmtree(out / "repo", ignore_errors=True)
    ens.export(str(out / "repo"))
    models = sorted(p.name for p in (out / "repo").iterdir() if p.is_dir())
    info = {"fit_s": round(fit_s, 2), "transform_s": round(transform_s, 2), "rows": len(clicks),
            "sessions": int(len(sessions)), "models": models, "entry_model": "executor_model",
            "inputs": {c.name: str(c.dtype.to_numpy) for c in workflow.input_schema},
            "outputs": list(workflow.output_schema.column_names), "versions": _versions()}
    (out / "build.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info), flush=True)
    return 0


def cmd_bench(args) -> int:
    import nvtabular as nvt
    from merlin.dag.executors import LocalExecutor

    out = Path(args.out)
    workflow = nvt.Workflow.load(str(out / "workflow"))
    request = pd.read_parquet(args.request)
    local = LocalExecutor()
    paths = {
        "nvtabular LocalExecutor (what TransformWorkflow runs)": lambda: local.transform(request.copy(), [workflow.output_node]),
        "nvtabular workflow.transform(Dataset).compute()": lambda: workflow.transform(nvt.Dataset(request.copy())).compute(),
    }
    for _ in range(args.warmup):
        for fn in paths.values():
            fn()
    gc.collect()
    gc.freeze()
    samples: dict[str, list[float]] = {n: [] for n in paths}
    for i in range(args.n):
        for n in (list(paths) if i % 2 == 0 else list(paths)[::-1]):
            t = time.perf_counter()
            paths[n]()
            samples[n].append(time.perf_counter() - t)
    res = local.transform(request.copy(), [workflow.output_node])
    (out / "inprocess.json").write_text(json.dumps({"samples": samples, "sessions_out": int(len(res)), "versions": _versions()}))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--clicks", required=True)
    b.add_argument("--out", required=True)
    m = sub.add_parser("bench")
    m.add_argument("--out", required=True)
    m.add_argument("--request", required=True)
    m.add_argument("--n", type=int, default=200)
    m.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)
    return {"build": cmd_build, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
