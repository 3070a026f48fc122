"""funnel_torch.session's transformer configs: Transformers4Rec's build arguments reach each
Hugging Face config under that model's own names (small untrained models, CPU, seconds)."""

from __future__ import annotations

import pytest
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
