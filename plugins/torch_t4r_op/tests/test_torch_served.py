"""PredictPyTorch served on the embedded Triton server equals in-process (executor and ensemble mode).

The Transformers4Rec-style traced model (values/offsets dict in, logits out, top-k with the
session's items excluded), a padded torch.export session model and a funnel_torch.session
XLNet, in one graph, with B = 1 and B > 1 requests; no transformers4rec anywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from funnel import ColumnSchema, Ensemble, Ragged, Schema, Table, Tags
from funnel.ops import Rename
from funnel_triton import TritonServer
from funnel_torch import PredictPyTorch
from funnel_torch.testing import CAT, ITEM, MAX_LEN, N_ITEMS, sessions

pytestmark = pytest.mark.triton

REQUEST = Schema([ColumnSchema(ITEM, "int64", dims=(None,)), ColumnSchema(CAT, "int64", dims=(None,))])


def _session_model_op(tmp_path_factory):
    """A funnel_torch.session XLNet (masked LM, appended-mask inference), exported to TorchScript."""
    from funnel_torch import session as tr

    schema = Schema([
        ColumnSchema(ITEM, "int64", dims=(None,), tags=[Tags.ITEM_ID, Tags.CATEGORICAL],
                     properties={"cardinality": N_ITEMS}),
        ColumnSchema(CAT, "int64", dims=(None,), tags=[Tags.CATEGORICAL], properties={"cardinality": 6}),
    ])
    torch.manual_seed(3)
    block = tr.TabularSequenceFeatures.from_schema(schema, max_sequence_length=MAX_LEN, d_output=32, masking="mlm",
                                                   embedding_dim_default=16)
    model = tr.XLNetConfig.build(d_model=32, n_head=2, n_layer=1, total_seq_length=MAX_LEN).to_torch_model(
        block, tr.NextItemPredictionTask(hf_format=True, weight_tying=True))
    path = tr.export(model, tmp_path_factory.mktemp("xlnet") / "xlnet.pt")
    return tr.predict_op(model, path, top_k=5)


@pytest.fixture(scope="module")
def xlnet_op(tmp_path_factory):
    return _session_model_op(tmp_path_factory)


def _top(t4r_traced):
    mapping = (np.arange(N_ITEMS) + 1000).astype("int64")
    return [ITEM, CAT] >> PredictPyTorch(t4r_traced, top_k=4, exclude_seen=True, item_id_column=ITEM, id_mapping=mapping)


def _xlnet(op):
    return [ITEM, CAT] >> op >> Rename({"item_ids": "xlnet_item_ids", "item_id_scores": "xlnet_scores"})


@pytest.fixture(scope="module")
def session_ensemble(t4r_traced, padded_export, xlnet_op):
    logits = [ITEM] >> Rename({ITEM: "item_ids"}) >> PredictPyTorch(
        padded_export, max_sequence_length={"item_ids": MAX_LEN}
    )
    return Ensemble(_top(t4r_traced) + logits + _xlnet(xlnet_op), REQUEST)


def _check(server, ens, padded=True):
    for seed, rows in ((1, 1), (2, 9)):
        items, cats = sessions(seed, rows)
        table = Table({ITEM: items, CAT: cats})
        local = ens.transform(table)
        served = server.infer(table, model="funnel")
        assert isinstance(served["item_ids"], Ragged)
        assert served["item_ids"].to_lists() == local["item_ids"].to_lists()
        for row, seen in enumerate(items.to_lists()):
            assert not {s + 1000 for s in seen} & set(served["item_ids"].to_lists()[row])
        np.testing.assert_allclose(served["item_id_scores"].values, local["item_id_scores"].values, rtol=1e-6)
        if padded:
            np.testing.assert_allclose(served["output"], local["output"], rtol=1e-5, atol=1e-6)
        assert served["xlnet_item_ids"].to_lists() == local["xlnet_item_ids"].to_lists()
        np.testing.assert_allclose(served["xlnet_scores"].values, local["xlnet_scores"].values, rtol=1e-5, atol=1e-6)


def test_served_executor_equals_in_process(session_ensemble, tmp_path):
    repo = session_ensemble.export(tmp_path / "repo")
    with TritonServer(repo, timeout=180) as server:
        _check(server, session_ensemble)


def test_served_ensemble_mode_python_runner_equals_in_process(t4r_traced, xlnet_op, tmp_path):
    # the two list-input session models (each model of an ensemble is its own process with its own torch)
    ens = Ensemble(_top(t4r_traced) + _xlnet(xlnet_op), REQUEST)
    repo = ens.export(tmp_path / "repo", mode="ensemble", native_backends=False)
    with TritonServer(repo, timeout=180) as server:
        _check(server, ens, padded=False)
