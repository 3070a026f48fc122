"""funnel_torch.session's transformer configs: Transformers4Rec's build arguments reach each
Hugging Face config under that model's own names (small untrained models, CPU, seconds)."""

from __future__ import annotations

import pytest
from funnel.errors import SchemaError
from funnel_torch import session as tr


def test_build_arguments_reach_each_hugging_face_config():
    args = {"d_model": 32, "n_head": 4, "n_layer": 2, "total_seq_length": 16, "hidden_act": "relu",
            "initializer_range": 0.02, "layer_norm_eps": 1e-5, "dropout": 0.125}
    xlnet = tr.XLNetConfig.build(**args, attn_type="uni").hf_config
    assert (xlnet.d_model, xlnet.n_head, xlnet.n_layer, xlnet.d_inner) == (32, 4, 2, 128)
    assert (xlnet.ff_activation, xlnet.attn_type, xlnet.dropout, xlnet.layer_norm_eps) == ("relu", "uni", 0.125, 1e-5)
    bert = tr.BertConfig.build(**args).hf_config
    assert (bert.hidden_size, bert.num_attention_heads, bert.num_hidden_layers, bert.intermediate_size) == (32, 4, 2, 128)
    assert (bert.hidden_act, bert.hidden_dropout_prob, bert.attention_probs_dropout_prob) == ("relu", 0.125, 0.125)
    assert bert.max_position_embeddings == 17 and bert.initializer_range == 0.02
    gpt2 = tr.GPT2Config.build(**args).hf_config
    assert (gpt2.n_embd, gpt2.n_head, gpt2.n_layer, gpt2.n_inner, gpt2.n_positions) == (32, 4, 2, 128, 17)
    assert (gpt2.activation_function, gpt2.resid_pdrop, gpt2.layer_norm_epsilon) == ("relu", 0.125, 1e-5)
    # other keyword arguments go to the Hugging Face config as they are
    assert tr.GPT2Config.build(**args, scale_attn_weights=False).hf_config.scale_attn_weights is False


@pytest.mark.parametrize("config,model", [(tr.XLNetConfig, "XLNetModel"), (tr.BertConfig, "BertModel"),
                                          (tr.GPT2Config, "GPT2Model")])
def test_each_body_is_its_hugging_face_model(config, model):
    body = config.build(d_model=16, n_head=2, n_layer=1, total_seq_length=8).body()
    assert type(body.model).__name__ == model and body.kind == config.kind
    if config is tr.BertConfig:
        assert body.model.pooler is None  # built without the pooling layer


def _sessions_schema(item: str = "item_id"):
    from funnel import ColumnSchema, Schema, Tags  # noqa: PLC0415

    return Schema([ColumnSchema(item, "int64", dims=(None,), tags=[Tags.ITEM_ID, Tags.CATEGORICAL],
                                properties={"cardinality": 30})])


def _sessions(item: str = "item_id", length: int = 30):
    import numpy as np  # noqa: PLC0415
    from funnel import Ragged  # noqa: PLC0415

    return {item: Ragged.from_lengths(np.arange(2 * length) % 29 + 1, np.array([length, length]))}


def _input(max_sequence_length: int, masking: str = "mlm", item: str = "item_id"):
    return tr.TabularSequenceFeatures.from_schema(_sessions_schema(item), max_sequence_length=max_sequence_length,
                                                  d_output=16, masking=masking, embedding_dim_default=16)


@pytest.mark.parametrize("config", [tr.BertConfig, tr.GPT2Config])
def test_position_embedded_models_need_total_seq_length(config):
    # it was silently 20: a model over 40-item sessions then failed inside the transformer
    # (BERT: "expanded size of the tensor (40) must match ... (21)", GPT-2: "index out of range")
    with pytest.raises(SchemaError, match=f"{config.__name__}.build: total_seq_length is required"):
        config.build(d_model=16, n_head=2, n_layer=1)
    for bad in (0, -3, 2.5, True, "20"):
        with pytest.raises(SchemaError, match="total_seq_length must be a positive integer"):
            config.build(d_model=16, n_head=2, n_layer=1, total_seq_length=bad)


@pytest.mark.parametrize("config,masking", [(tr.BertConfig, "mlm"), (tr.GPT2Config, "clm"), (tr.XLNetConfig, "mlm")])
def test_a_transformer_shorter_than_the_input_block_is_refused(config, masking):
    with pytest.raises(SchemaError, match=f"max_sequence_length=40 but the {config.kind} transformer was built "
                                             f"for total_seq_length=20; pass total_seq_length=40 to {config.__name__}"):
        config.build(d_model=16, n_head=2, n_layer=1, total_seq_length=20).to_torch_model(
            _input(40, masking), tr.NextItemPredictionTask())
    model = config.build(d_model=16, n_head=2, n_layer=1, total_seq_length=40).to_torch_model(
        _input(40, masking), tr.NextItemPredictionTask())
    assert set(tr.evaluate(model, _sessions(), ks=(5,))) == {"recall@5", "ndcg@5"}


def test_xlnet_needs_no_total_seq_length():
    config = tr.XLNetConfig.build(d_model=16, n_head=2, n_layer=1)  # relative attention: no position table
    assert config.total_seq_length is None
    model = config.to_torch_model(_input(40), tr.NextItemPredictionTask())
    assert set(tr.evaluate(model, _sessions(), ks=(5,))) == {"recall@5", "ndcg@5"}


def test_any_column_names_get_their_own_embedding(tmp_path):
    # 'items' (an attribute of torch's ModuleDict) failed with "attribute 'items' already exists";
    # 'cat.x' became 'cat_x' and silently shared one embedding table with the column 'cat_x'
    import numpy as np  # noqa: PLC0415
    from funnel import ColumnSchema, Ragged, Schema, Tags  # noqa: PLC0415

    schema = Schema([
        ColumnSchema("items", "int64", dims=(None,), tags=[Tags.ITEM_ID, Tags.CATEGORICAL], properties={"cardinality": 30}),
        ColumnSchema("cat.x", "int64", dims=(None,), tags=[Tags.CATEGORICAL], properties={"cardinality": 5}),
        ColumnSchema("cat_x", "int64", dims=(None,), tags=[Tags.CATEGORICAL], properties={"cardinality": 50}),
        ColumnSchema("training", "int64", dims=(None,), tags=[Tags.CATEGORICAL], properties={"cardinality": 7}),
    ])
    inp = tr.TabularSequenceFeatures.from_schema(schema, max_sequence_length=8, d_output=16, embedding_dim_default=8)
    sizes = sorted(e.num_embeddings for e in inp.embeddings.values())
    assert sizes == [5, 7, 30, 50]
    model = tr.XLNetConfig.build(d_model=16, n_head=2, n_layer=1, total_seq_length=8).to_torch_model(
        inp, tr.NextItemPredictionTask())
    lengths = np.array([6, 8, 3])
    n = int(lengths.sum())
    rng = np.random.default_rng(0)
    data = {"items": Ragged.from_lengths(rng.integers(1, 30, n), lengths),
            "cat.x": Ragged.from_lengths(rng.integers(1, 5, n), lengths),
            "cat_x": Ragged.from_lengths(rng.integers(1, 50, n), lengths),
            "training": Ragged.from_lengths(rng.integers(1, 7, n), lengths)}
    assert set(tr.evaluate(model, data, ks=(5,))) == {"recall@5", "ndcg@5"}
    assert tr.export(model, tmp_path / "names.pt").is_file()  # TorchScript keeps the keys


def test_pad_sessions_refuses_an_unknown_truncate():
    # any word but 'last' and 'error' used to keep the first items
    with pytest.raises(SchemaError, match="truncate='lastt' must be 'last', 'first' or 'error'"):
        tr.pad_sessions(_sessions(length=5), ["item_id"], 3, truncate="lastt")
    assert tr.pad_sessions(_sessions(length=5), ["item_id"], 3, truncate="last")["item_id"].tolist()[0] == [3, 4, 5]


@pytest.mark.parametrize("step", ["fit", "evaluate"])
def test_ids_outside_the_embedding_table_name_the_column(step):
    # they were an IndexError "index out of range in self" from inside torch
    import numpy as np  # noqa: PLC0415
    from funnel import Ragged  # noqa: PLC0415

    model = tr.XLNetConfig.build(d_model=16, n_head=2, n_layer=1).to_torch_model(_input(8), tr.NextItemPredictionTask())
    data = {"item_id": Ragged.from_lengths(np.array([1, 2, 31, 4, 5, 6]), np.array([4, 2]))}
    run = (lambda: tr.fit(model, data, epochs=1, progress=False)) if step == "fit" else (lambda: tr.evaluate(model, data))
    with pytest.raises(SchemaError, match=rf"{step}: column 'item_id' holds id 31, outside its embedding table of "
                                          r"cardinality 30 \(ids 0\.\.29"):
        run()
