"""Native ``pytorch_libtorch`` model directories (export only: the embedded server has no libtorch backend).

The config is checked field by field, and the TorchScript file it points at is loaded back
and called the way the libtorch backend calls it (a dict of the config's input tensors,
outputs by OUTPUT__<i>), giving what PredictPyTorch gives in-process.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from funnel import ColumnSchema, ColumnSelector, Ensemble, Ragged, Schema, Table
from funnel.ops import UnrollFeatures
from funnel_torch import PredictPyTorch
from funnel_torch.native import write_libtorch_model
from funnel_torch.testing import CAT, ITEM, N_ITEMS, sessions

REQUEST = Schema([ColumnSchema(ITEM, "int64", dims=(None,)), ColumnSchema(CAT, "int64", dims=(None,))])


def _entries(text: str, kind: str) -> list[dict[str, str]]:
    block = re.search(kind + r" \[\n(.*?)\n\]\n", text, re.S).group(1)
    return [dict(re.findall(r"(\w+): (.+)", e)) for e in block.split("},\n  {")]


def test_t4r_libtorch_directory_with_top_k(t4r_traced, tmp_path):
    mapping = (np.arange(N_ITEMS) + 500).astype("int64")
    op = PredictPyTorch(t4r_traced, top_k=3, exclude_seen=True, item_id_column=ITEM, id_mapping=mapping)
    model_dir = write_libtorch_model(op, REQUEST, tmp_path / "t4r")
    text = (model_dir / "config.pbtxt").read_text()
    assert 'platform: "pytorch_libtorch"' in text and "max_batch_size: 0" in text
    inputs = {e["name"].strip('"'): e for e in _entries(text, "input")}
    assert set(inputs) == {ITEM + "__values", ITEM + "__offsets", CAT + "__values"}
    assert inputs[ITEM + "__values"]["data_type"] == "TYPE_INT64"
    assert inputs[ITEM + "__offsets"]["dims"] == "[ 1, -1 ]"
    assert inputs[ITEM + "__offsets"]["reshape"] == "{ shape: [ -1 ] }"
    outputs = [e["name"].strip('"') for e in _entries(text, "output")]
    assert outputs == ["OUTPUT__0", "OUTPUT__1", "OUTPUT__2", "OUTPUT__3"]
    assert [e["data_type"] for e in _entries(text, "output")] == ["TYPE_FP32", "TYPE_INT64", "TYPE_INT64", "TYPE_INT64"]
    # call the file as the libtorch backend would: one dict of the config's input tensors
    module = torch.jit.load(str(model_dir / "1" / "model.pt"))
    items, cats = sessions(11, 5)
    feeds = {
        ITEM + "__values": torch.as_tensor(items.values),
        ITEM + "__offsets": torch.as_tensor(items.offsets),
        CAT + "__values": torch.as_tensor(cats.values),
    }
    with torch.no_grad():
        scores, offsets, ids, _ = module(feeds)
    local = Ensemble([ITEM, CAT] >> op, REQUEST).transform(Table({ITEM: items, CAT: cats}))
    assert Ragged(ids.numpy(), offsets.numpy()).to_lists() == local["item_ids"].to_lists()
    np.testing.assert_allclose(scores.numpy(), local["item_id_scores"].values, rtol=1e-6)


def test_ranker_is_wired_natively_in_ensemble_export(ranker_scripted, tmp_path):
    op = PredictPyTorch(ranker_scripted, output_schema=Schema([ColumnSchema("score", "float32", dims=(1,))]))
    native = op.native_triton_model()
    assert native.platform == "pytorch_libtorch" and native.artifact == "model.pt"
    assert native.outputs == {"score": "OUTPUT__0"}
    req = Schema([ColumnSchema("user_age", "int32"), ColumnSchema("item_id", "int64", dims=(None,))])
    unrolled = ["item_id"] >> UnrollFeatures("item_id", ColumnSelector(["user_age"]))
    ens = Ensemble(unrolled >> op, req)
    repo = ens.export(tmp_path / "repo", mode="ensemble")
    (model_dir,) = [p for p in repo.iterdir() if p.is_dir() and "PredictPyTorch" in p.name]
    text = (model_dir / "config.pbtxt").read_text()
    assert 'platform: "pytorch_libtorch"' in text
    assert 'name: "OUTPUT__0"' in text and "TYPE_FP32" in text
    module = torch.jit.load(str(model_dir / "1" / "model.pt"))
    ages, item_ids = torch.tensor([20, 30], dtype=torch.int32), torch.tensor([3, 4])
    with torch.no_grad():
        (score,) = module(*[{"user_age": ages, "item_id": item_ids}[c] for c in op.columns])
    local = op.transform(Table({"user_age": ages.numpy(), "item_id": item_ids.numpy()}))
    np.testing.assert_allclose(score.numpy(), local["score"], rtol=1e-6)
