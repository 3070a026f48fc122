"""The session demo's steps: ETL by day, XLNet training, the served graph, quality vs baselines."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from funnel import Ensemble, Ragged, Schema, Table, Tags

import funnel_workflow as nvt
from examples.session.data import load_interactions
from examples.session.etl import SEQUENCE_FEATURES, SESSIONS_MAX_LENGTH, build_workflow
from examples.session.evaluate import metrics, popularity_scorer, transition_scorer
from funnel_torch import session as tr
from funnel_workflow import TransformWorkflow

__all__ = ["Settings", "Prepared", "prepare", "build_ensemble", "quality", "example_request", "ITEM"]

ITEM = "item_id-list_seq"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of the demo. The defaults train in about two minutes on 2 CPU cores."""

    max_users: int | None = None  # None: all 943 users
    train_last_day: int = 185  # sessions starting on days 1..185 train, later days evaluate
    d_model: int = 64
    n_head: int = 4
    n_layer: int = 2
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 2e-3
    seed: int = 0


@dataclasses.dataclass
class Prepared:
    raw: pd.DataFrame  # the cleaned raw interaction rows (all days)
    workflow: nvt.Workflow  # fitted on the training days' rows
    train: Table  # sessions of the training days (workflow output)
    test: Table  # sessions of the evaluation days
    model: tr.SessionModel
    model_path: Path
    losses: list[float]
    train_seconds: float


def model_schema(workflow: nvt.Workflow) -> Schema:
    """The four sequence features of the workflow's output schema, as the example selects them.

    ``et_dayofweek_sin`` comes out of a LambdaOp, which cannot know it is continuous: it is
    tagged here (the example's schema file carried that tag).
    """
    schema = workflow.output_schema.select_by_name(SEQUENCE_FEATURES)
    cols = []
    for col in schema:
        if col.name == "et_dayofweek_sin-list_seq":
            col = col.with_tags([*col.tags, Tags.CONTINUOUS]).with_dtype("float32")
        cols.append(col)
    return Schema(cols)


def _as_table(df: pd.DataFrame, schema: Schema) -> Table:
    table = Table.from_pandas(df.reset_index(drop=True))
    out = {}
    for name in table.column_names:
        col = table[name]
        if name in schema and isinstance(col, Ragged):
            col = Ragged(np.asarray(col.values).astype(schema[name].numpy_dtype), col.offsets)
        out[name] = col
    return Table(out)


def prepare(workdir: Path, settings: Settings = Settings(), log: Callable[[str], None] = print) -> Prepared:
    """Sessions from MovieLens-100K, the workflow fitted, split by day, the model trained."""
    workdir.mkdir(parents=True, exist_ok=True)
    raw = load_interactions(settings.max_users)
    log(f"[data] {len(raw):,} clicks in {raw.session_id.nunique():,} sessions of {raw.user_id.nunique():,} users")
    # Fitted on every day, as the example fits it: its Categorify encodes session_id too, and a
    # vocabulary of the training days alone would send every later session to the one
    # out-of-vocabulary id, which Groupby would then merge into a single session.
    workflow = build_workflow()
    workflow.fit(nvt.Dataset(raw))
    sessions = workflow.transform(nvt.Dataset(raw)).compute()
    # the example's save_time_based_splits idea: one parquet directory per day
    sessions.to_parquet(workdir / "sessions_by_day", partition_cols=["day_index"], index=False)
    workflow.save(workdir / "workflow_etl")
    schema = model_schema(workflow)
    is_train = sessions.day_index <= settings.train_last_day
    train = _as_table(sessions[is_train], schema)
    test = _as_table(sessions[~is_train], schema)
    log(f"[etl] {len(sessions):,} sessions of ≥ 2 clicks: {int(is_train.sum()):,} train (days ≤ "
        f"{settings.train_last_day}), {int((~is_train).sum()):,} evaluation (later days); written by day to "
        f"{workdir / 'sessions_by_day'}")

    torch.manual_seed(settings.seed)
    input_module = tr.TabularSequenceFeatures.from_schema(
        schema,
        max_sequence_length=SESSIONS_MAX_LENGTH,
        continuous_projection=64,
        aggregation="concat",
        d_output=settings.d_model,
        masking="mlm",
    )
    prediction_task = tr.NextItemPredictionTask(hf_format=True, weight_tying=True)
    transformer_config = tr.XLNetConfig.build(
        d_model=settings.d_model, n_head=settings.n_head, n_layer=settings.n_layer,
        total_seq_length=SESSIONS_MAX_LENGTH,
    )
    model = transformer_config.to_torch_model(input_module, prediction_task)
    log(f"[model] XLNet masked-LM, d_model {settings.d_model}, {settings.n_layer} layers, {settings.n_head} heads, "
        f"weight-tied head over {input_module.item_cardinality:,} item ids; training {settings.epochs} epochs")
    t0 = time.perf_counter()
    losses = tr.fit(model, train.select(model.columns), epochs=settings.epochs, batch_size=settings.batch_size,
                    learning_rate=settings.learning_rate, seed=settings.seed)
    seconds = time.perf_counter() - t0
    log(f"[model] trained in {seconds:.0f} s; loss {losses[0]:.3f} → {losses[-1]:.3f}")
    path = tr.export(model, workdir / "session_model.pt")
    return Prepared(raw, workflow, train, test, model, path, losses, seconds)


def id_mapping(workflow: nvt.Workflow, n_items: int) -> np.ndarray:
    """encoded item id → raw movie id (-1 for the reserved and unused ids)."""
    cats = workflow.categories("item_id")
    mapping = np.full(n_items, -1, dtype=np.int64)
    mapping[cats.encoded.to_numpy()] = cats.item_id.to_numpy()
    return mapping


def build_ensemble(prep: Prepared, top_k: int = 20) -> Ensemble:
    """Raw interaction rows → TransformWorkflow → PredictPyTorch(top_k) → raw movie ids per session."""
    workflow = prep.workflow
    sessions = workflow.input_schema.column_names >> TransformWorkflow(workflow)
    predict = tr.predict_op(prep.model, prep.model_path, top_k=top_k, exclude_seen=True,
                            id_mapping=id_mapping(workflow, prep.model.input_module.item_cardinality))
    scored = sessions[prep.model.columns] >> predict
    return Ensemble(sessions["session_id"] + scored, workflow.input_schema)


def example_request(raw: pd.DataFrame, rows: int = 50) -> pd.DataFrame:
    """The example's request: the last ``rows`` raw interactions, sessions with more than one row."""
    batch = raw.sort_values("timestamp", kind="stable")[-rows:]
    counts = batch.session_id.value_counts()
    return batch[batch.session_id.isin(counts[counts.values > 1].index.values)]


def model_scores(model: tr.SessionModel, prefixes: Table, batch_size: int = 512) -> np.ndarray:
    arrays = tr.pad_sessions(prefixes, model.columns, model.max_sequence_length)
    n = next(iter(arrays.values())).shape[0]
    parts = []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            parts.append(model({k: torch.as_tensor(v[start:start + batch_size]) for k, v in arrays.items()}).numpy())
    scores = np.concatenate(parts).astype(np.float64)
    scores[:, :2] = -np.inf  # padding and out-of-vocabulary ids are never recommended
    return scores


def quality(prep: Prepared, k: int = 20) -> dict[str, dict[str, float]]:
    """Recall@k / NDCG@k on the evaluation days: the model, popularity, last-item transitions."""
    cols = [ITEM, *[c for c in prep.model.columns if c != ITEM]]
    prefixes, targets = tr.split_last(prep.test.select(cols), cols)
    prefix_items = [np.asarray(x) for x in prefixes[ITEM].to_lists()]
    n_items = prep.model.input_module.item_cardinality
    train_items = [np.asarray(x) for x in prep.train[ITEM].to_lists()]
    out = {"XLNet (funnel_torch.session)": metrics(model_scores(prep.model, Table(prefixes)), prefix_items, targets, k)}
    for name, make in (("popularity", popularity_scorer), ("last-item transitions", transition_scorer)):
        scores = np.array(make(train_items, n_items)(prefix_items), dtype=np.float64)
        scores[:, :2] = -np.inf
        out[name] = metrics(scores, prefix_items, targets, k)
    return out
