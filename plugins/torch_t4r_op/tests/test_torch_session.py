"""funnel_torch.session: Transformers4Rec-style models built from a funnel schema, trained on
generated sessions with real sequential structure, compared with popularity, exported and served."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from funnel import ColumnSchema, Ensemble, Ragged, Schema, SchemaError, Table, Tags
from funnel_torch import session as tr

N_ITEMS = 120  # ids 1..119, 0 = padding
N_CATS = 8
MAX_LEN = 12
ITEM, CAT, AGE = "item_id-list_seq", "category-list_seq", "product_recency_days_log_norm-list_seq"

SCHEMA = Schema([
    ColumnSchema(ITEM, "int64", dims=(None,), tags=[Tags.ITEM_ID, Tags.CATEGORICAL, Tags.LIST],
                 properties={"cardinality": N_ITEMS}),
    ColumnSchema(CAT, "int64", dims=(None,), tags=[Tags.CATEGORICAL, Tags.LIST], properties={"cardinality": N_CATS}),
    ColumnSchema(AGE, "float32", dims=(None,), tags=[Tags.CONTINUOUS, Tags.LIST]),
])


def generate(seed: int, n: int) -> Table:
    """Sessions that walk a fixed item graph (each item has two likely successors), with a
    popular-item start and 10 % random jumps: the next item depends on the current one."""
    rng = np.random.default_rng(seed)
    graph = np.random.default_rng(99).integers(1, N_ITEMS, (N_ITEMS, 2))
    popular = np.random.default_rng(98).zipf(1.3, 5000) % (N_ITEMS - 1) + 1
    lengths = rng.integers(3, MAX_LEN + 1, n)
    items = np.empty(int(lengths.sum()), np.int64)
    pos = 0
    for length in lengths:
        cur = popular[rng.integers(0, popular.size)]
        for j in range(length):
            items[pos + j] = cur
            cur = graph[cur, int(rng.random() < 0.25)] if rng.random() > 0.1 else popular[rng.integers(0, popular.size)]
        pos += length
    cats = items % (N_CATS - 1) + 1
    ages = rng.random(items.size).astype("float32")
    return Table({ITEM: Ragged.from_lengths(items, lengths), CAT: Ragged.from_lengths(cats, lengths),
                  AGE: Ragged.from_lengths(ages, lengths)})


def build(masking: str = "mlm", config: type = tr.XLNetConfig) -> tr.SessionModel:
    torch.manual_seed(0)
    d_model = 48
    input_module = tr.TabularSequenceFeatures.from_schema(
        SCHEMA, max_sequence_length=MAX_LEN, continuous_projection=16, aggregation="concat", d_output=d_model,
        masking=masking, embedding_dim_default=32,
    )
    task = tr.NextItemPredictionTask(hf_format=True, weight_tying=True)
    return config.build(d_model=d_model, n_head=4, n_layer=1, total_seq_length=MAX_LEN, dropout=0.1).to_torch_model(
        input_module, task)


@pytest.fixture(scope="module")
def trained():
    train, test = generate(0, 2500), generate(1, 600)
    model = build()
    losses = tr.fit(model, train, epochs=4, batch_size=64, learning_rate=3e-3, progress=False)
    return model, train, test, losses


def test_xlnet_mlm_beats_popularity_on_held_out_next_items(trained):
    model, train, test, losses = trained
    assert losses[-1] < losses[0]
    got = tr.evaluate(model, test, ks=(10, 20))
    pop = tr.popularity_baseline(train, test, ITEM, ks=(10, 20))
    assert got["recall@10"] > pop["recall@10"] + 0.15, (got, pop)
    assert got["ndcg@10"] > pop["ndcg@10"], (got, pop)
    # the parity trap: scoring the raw sequence (no appended mask) is worse than the appended mask
    inputs, target = tr.split_last(test, [ITEM, CAT, AGE])
    arrays = {k: torch.as_tensor(v) for k, v in tr.pad_sessions(inputs, model.columns, MAX_LEN).items()}
    with torch.inference_mode():
        x = model.input_module(arrays)
        h = model.body(x, arrays[ITEM] != 0, False)
        lengths = (arrays[ITEM] != 0).sum(1)
        raw = model.prediction_task(h[torch.arange(len(target)), lengths - 1]).numpy()
    raw[:, 0] = -np.inf
    raw_recall = float((np.argsort(-raw, 1)[:, :10] == target[:, None]).any(1).mean())
    assert got["recall@10"] > raw_recall, (got, raw_recall)


@pytest.mark.parametrize(("config", "masking"), [(tr.BertConfig, "mlm"), (tr.GPT2Config, "clm")])
def test_bert_and_gpt2_train_and_score(config, masking):
    model = build(masking, config)
    train = generate(2, 300)
    losses = tr.fit(model, train, epochs=1, batch_size=64, progress=False)
    assert np.isfinite(losses[0])
    got = tr.evaluate(model, generate(3, 100), ks=(10,))
    assert 0.0 <= got["recall@10"] <= 1.0


def test_exported_session_model_serves_like_evaluate(trained, tmp_path):
    model, _, test, _ = trained
    path = tr.export(model, tmp_path / "session.pt")
    op = tr.predict_op(model, path, top_k=10)
    ens = Ensemble([ITEM, CAT, AGE] >> op, SCHEMA)
    inputs, _ = tr.split_last(test.select([ITEM, CAT, AGE]), [ITEM, CAT, AGE])
    batch = Table({k: v.take_rows(np.arange(7)) for k, v in inputs.items()})
    out = ens.transform(batch)
    arrays = {k: torch.as_tensor(v) for k, v in tr.pad_sessions(batch, model.columns, MAX_LEN).items()}
    with torch.inference_mode():
        want = torch.topk(model(arrays), 10, dim=1)
    assert out["item_ids"].to_lists() == want.indices.tolist()
    # a session alone scores as in a batch (fixed-length padding)
    alone = ens.transform(Table({k: v.take_rows([3]) for k, v in batch.items()}))
    np.testing.assert_allclose(alone["item_id_scores"].values, out["item_id_scores"].to_lists()[3], rtol=1e-5)
    pt2 = tr.export(model, tmp_path / "session.pt2")
    out2 = Ensemble([ITEM, CAT, AGE] >> tr.predict_op(model, pt2, top_k=10), SCHEMA).transform(batch)
    assert out2["item_ids"].to_lists() == out["item_ids"].to_lists()


def test_schema_errors_name_the_column():
    bad = Schema([ColumnSchema(ITEM, "int64", dims=(None,), tags=[Tags.ITEM_ID, Tags.CATEGORICAL])])
    with pytest.raises(SchemaError, match=r"'item_id-list_seq' has no 'cardinality'"):
        tr.TabularSequenceFeatures.from_schema(bad, max_sequence_length=MAX_LEN)
    with pytest.raises(SchemaError, match="d_output=48"):
        input_module = tr.TabularSequenceFeatures.from_schema(SCHEMA, max_sequence_length=MAX_LEN, d_output=32)
        tr.XLNetConfig.build(d_model=48, n_head=4, n_layer=1).to_torch_model(input_module, tr.NextItemPredictionTask())
