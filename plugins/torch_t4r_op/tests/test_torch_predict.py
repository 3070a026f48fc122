"""PredictPyTorch in-process: real TorchScript / torch.export / nn.Module models, equal to direct calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from funnel import ColumnSchema, ColumnSelector, Ensemble, Ragged, RequestError, Schema, SchemaError, Table
from funnel.ops import UnrollFeatures
from funnel_torch import PredictPyTorch
from funnel_torch.testing import CAT, ITEM, MAX_LEN, N_ITEMS, direct, sessions, t4r_inputs

T4R_REQUEST = Schema([ColumnSchema(ITEM, "int64", dims=(None,)), ColumnSchema(CAT, "int64", dims=(None,))])
PADDED_REQUEST = Schema([ColumnSchema("item_ids", "int64", dims=(None,))])


def test_module_import_does_not_import_torch():
    code = "import funnel_torch, funnel_torch.plugin, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_funnel_plugins_lists_torch():
    funnel = Path(sys.executable).parent / "funnel"
    out = subprocess.run([str(funnel), "plugins", "--json"], capture_output=True, text=True, check=True)
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert "torch" in plugins, out.stdout
    assert plugins["torch"]["distribution"] == "funnel-torch"
    assert "torch.PredictPyTorch" in plugins["torch"]["operators"]
    assert not plugins["torch"].get("error")


def test_traced_t4r_signature_is_read_from_the_graph(t4r_traced):
    op = PredictPyTorch(t4r_traced)
    assert op.call == "dict"
    assert {(s["name"], s["kind"]) for s in op.inputs} == {
        (ITEM + "__values", "values"), (ITEM + "__offsets", "offsets"),
        (CAT + "__values", "values"),  # the model never reads the category offsets: its graph says so
    }
    assert sorted(op.columns) == sorted([ITEM, CAT])
    assert op.rowwise is False  # list inputs: a session model, never lifted over candidates
    ens = Ensemble([ITEM, CAT] >> op, T4R_REQUEST)
    assert ens.output_schema == Schema([ColumnSchema("output", "float32", dims=(N_ITEMS,))])


@pytest.mark.parametrize("rows", [1, 7])
def test_traced_t4r_equals_direct_call(t4r_traced, t4r_module, rows):
    items, cats = sessions(rows, rows)
    ens = Ensemble([ITEM, CAT] >> PredictPyTorch(t4r_traced), T4R_REQUEST)
    # offsets arrive as int32 (NVTabular's) and are cast losslessly to the model's int64
    table = Table({ITEM: Ragged(items.values, items.offsets.astype("int32")), CAT: cats})
    out = ens.transform(table)
    want = direct(t4r_module, t4r_inputs(items, cats))
    assert out["output"].shape == (rows, N_ITEMS)
    np.testing.assert_allclose(out["output"], want, rtol=1e-5, atol=1e-6)


def test_top_k_with_and_without_exclusion_and_decoding(t4r_traced, t4r_module):
    items, cats = sessions(3, 6)
    table = Table({ITEM: items, CAT: cats})
    logits = direct(t4r_module, t4r_inputs(items, cats))
    plain = Ensemble([ITEM, CAT] >> PredictPyTorch(t4r_traced, top_k=5), T4R_REQUEST).transform(table)
    assert isinstance(plain["item_ids"], Ragged) and plain["item_ids"].values.dtype == np.int64
    assert plain["item_id_scores"].values.dtype == np.float32
    want_ids = np.argsort(-logits, axis=1)[:, :5]
    assert plain["item_ids"].to_lists() == want_ids.tolist()
    np.testing.assert_allclose(
        np.array(plain["item_id_scores"].to_lists()), np.take_along_axis(logits, want_ids, 1), rtol=1e-6
    )
    mapping = (np.arange(N_ITEMS) * 10 + 7).astype("int64")  # encoded id → raw id
    op = PredictPyTorch(t4r_traced, top_k=5, exclude_seen=True, item_id_column=ITEM, id_mapping=mapping)
    excl = Ensemble([ITEM, CAT] >> op, T4R_REQUEST).transform(table)
    masked = logits.copy()
    for row, seen in enumerate(items.to_lists()):
        masked[row, seen] = -np.inf
    want = np.argsort(-masked, axis=1, kind="stable")[:, :5]
    assert excl["item_ids"].to_lists() == mapping[want].tolist()
    for row, seen in enumerate(items.to_lists()):
        assert not set(mapping[seen]) & set(excl["item_ids"].to_lists()[row])


def test_padded_export_fixed_length_and_batch_independence(padded_export, padded_module):
    op = PredictPyTorch(padded_export)
    assert op.format == "export"
    (spec,) = op.inputs
    assert spec["kind"] == "dense"  # no length hint yet: a 2-d input of a dense column
    op = PredictPyTorch(padded_export, max_sequence_length={"item_ids": MAX_LEN})
    (spec,) = op.inputs
    assert (spec["kind"], spec["length"]) == ("padded", MAX_LEN)  # the program's fixed dim
    ens = Ensemble(["item_ids"] >> op, PADDED_REQUEST)
    short = [3, 5]
    alone = ens.transform(Table({"item_ids": Ragged.from_lists([short])}))["output"]
    batch = ens.transform(Table({"item_ids": Ragged.from_lists([short, [1, 2, 3, 4, 5, 6, 7, 8], [9]])}))["output"]
    # its neighbours do not move it (beyond float rounding of batched kernels)
    np.testing.assert_allclose(alone[0], batch[0], rtol=1e-5, atol=1e-6)
    padded = torch.zeros(1, MAX_LEN, dtype=torch.int64)
    padded[0, :2] = torch.tensor(short)
    np.testing.assert_allclose(alone, direct(padded_module, padded), rtol=1e-5, atol=1e-6)
    # what a pad-to-longest caller would compute instead: a different score
    to_longest = torch.tensor([short])
    assert not np.allclose(alone, direct(padded_module, to_longest), atol=1e-3)


def test_padded_module_length_from_schema_and_save_load(padded_module, tmp_path):
    req = Schema([ColumnSchema("item_ids", "int64", dims=(None,), properties={"value_count": {"max": MAX_LEN}})])
    op = PredictPyTorch(padded_module, input_schema=req)
    assert op.inputs[0]["kind"] == "padded" and op.inputs[0]["length"] == MAX_LEN
    ens = Ensemble(["item_ids"] >> op, req)
    table = Table({"item_ids": sessions(5, 4)[0]})
    before = ens.transform(table)["output"]
    ens.save(tmp_path / "g")
    files = sorted(p.name for p in (tmp_path / "g").rglob("*") if p.is_file())
    assert "model.pt" in files and not any(f.endswith((".pkl", ".pickle")) for f in files)
    loaded = Ensemble.load(tmp_path / "g")
    np.testing.assert_allclose(loaded.transform(table)["output"], before, rtol=1e-5, atol=1e-6)


def test_nn_module_exported_with_torch_export(t4r_module, tmp_path):
    schema = T4R_REQUEST
    op = PredictPyTorch(t4r_module, input_schema=schema, export_format="export")
    assert [s["kind"] for s in op.inputs] == ["values", "offsets", "values", "offsets"]
    ens = Ensemble([ITEM, CAT] >> op, schema)
    items, cats = sessions(8, 5)
    table = Table({ITEM: items, CAT: cats})
    before = ens.transform(table)["output"]
    np.testing.assert_allclose(before, direct(t4r_module, t4r_inputs(items, cats)), rtol=1e-5, atol=1e-6)
    ens.save(tmp_path / "g")
    assert list((tmp_path / "g").rglob("model.pt2"))
    loaded = Ensemble.load(tmp_path / "g")
    assert loaded.graph.nodes[-1].node.op.format == "export"
    np.testing.assert_allclose(loaded.transform(table)["output"], before, rtol=1e-5, atol=1e-6)


def test_scripted_ranker_runs_row_wise_over_candidates(ranker_scripted, ranker_module):
    op = PredictPyTorch(ranker_scripted, output_schema=Schema([ColumnSchema("score", "float32", dims=(1,))]))
    assert op.call == "args" and [s["name"] for s in op.inputs] == ["user_age", "item_id"]
    assert op.rowwise is True
    req = Schema([ColumnSchema("user_age", "int32"), ColumnSchema("item_id", "int64", dims=(None,))])
    unrolled = ["item_id"] >> UnrollFeatures("item_id", ColumnSelector(["user_age"]))
    ens = Ensemble(unrolled["item_id"] + (unrolled >> op), req)
    items = Ragged.from_lists([[1, 2, 3], [4], [5, 6]])
    ages = np.array([20, 30, 40], dtype="int32")
    out = ens.transform(Table({"user_age": ages, "item_id": items}))
    assert isinstance(out["score"], Ragged) and out["score"].same_offsets(items)
    flat_age = torch.as_tensor(np.repeat(ages, [3, 1, 2]))
    want = direct(ranker_module, flat_age, torch.as_tensor(items.values)).reshape(-1)
    np.testing.assert_allclose(out["score"].values, want, rtol=1e-6)


def test_traced_ranker_without_output_schema_probes_outputs(ranker_module, tmp_path):
    path = tmp_path / "ranker_traced.pt"
    torch.jit.trace(ranker_module, (torch.tensor([20, 30], dtype=torch.int32), torch.tensor([1, 2]))).save(str(path))
    op = PredictPyTorch(path, intra_op_threads=1)
    assert op.outputs == [{"name": "output", "dtype": "float32", "shape": [None, 1]}]
    assert torch.get_num_threads() == 1
    req = Schema([ColumnSchema("user_age", "int32"), ColumnSchema("item_id", "int64")])
    out = Ensemble(["user_age", "item_id"] >> op, req).transform(
        Table({"user_age": np.array([20, 50], "int32"), "item_id": np.array([3, 4])})
    )
    assert out["output"].shape == (2,)  # a (B, 1) output is one score per row


def test_errors_name_the_column(t4r_traced, padded_export):
    with pytest.raises(SchemaError, match=r"'category-list_seq' is missing"):
        Ensemble([ITEM] >> PredictPyTorch(t4r_traced), Schema([ColumnSchema(ITEM, "int64", dims=(None,))]))
    with pytest.raises(SchemaError, match=r"'item_ids'.*list column.*max_sequence_length"):
        Ensemble(["item_ids"] >> PredictPyTorch(padded_export), PADDED_REQUEST)
    with pytest.raises(SchemaError, match=r"'item_ids'.*float32.*cast it upstream"):
        Ensemble(
            ["item_ids"] >> PredictPyTorch(padded_export, max_sequence_length={"item_ids": MAX_LEN}),
            Schema([ColumnSchema("item_ids", "float32", dims=(None,))]),
        )
    ens = Ensemble(["item_ids"] >> PredictPyTorch(padded_export, max_sequence_length={"item_ids": MAX_LEN}),
                   PADDED_REQUEST)
    with pytest.raises(RequestError, match=r"'item_ids' has a list of 9 elements.*fixed length 8"):
        ens.transform(Table({"item_ids": Ragged.from_lists([list(range(1, 10))])}))
    with pytest.raises(SchemaError, match="top_k=99 is more than the model's 40 items"):
        PredictPyTorch(t4r_traced, top_k=99)
    with pytest.raises(SchemaError, match="id_mapping must be a 1-d integer array"):
        PredictPyTorch(t4r_traced, top_k=3, id_mapping=np.zeros((N_ITEMS,), "float32"))


def test_truncate_last_keeps_the_most_recent_items(padded_export, padded_module):
    op = PredictPyTorch(padded_export, max_sequence_length={"item_ids": MAX_LEN}, truncate="last")
    ens = Ensemble(["item_ids"] >> op, PADDED_REQUEST)
    long = list(range(1, 12))
    out = ens.transform(Table({"item_ids": Ragged.from_lists([long, [2]])}))["output"]
    np.testing.assert_allclose(out[:1], direct(padded_module, torch.tensor([long[-MAX_LEN:]])), rtol=1e-5, atol=1e-6)


def test_lossy_request_values_are_refused(ranker_scripted):
    op = PredictPyTorch(ranker_scripted, input_schema=Schema([ColumnSchema("user_age", "int32"),
                                                               ColumnSchema("item_id", "int64")]),
                        output_schema=Schema([ColumnSchema("score", "float32", dims=(1,))]))
    req = Schema([ColumnSchema("user_age", "int64"), ColumnSchema("item_id", "int64")])
    ens = Ensemble(["user_age", "item_id"] >> op, req)
    ok = ens.transform(Table({"user_age": np.array([30], "int64"), "item_id": np.array([1])}))
    assert ok["score"].shape == (1,)
    with pytest.raises(RequestError, match=r"'user_age' has values in \[3000000000"):
        ens.transform(Table({"user_age": np.array([3_000_000_000], "int64"), "item_id": np.array([1])}))


def test_device_names(monkeypatch):
    from funnel_torch.predict import resolve_device

    with pytest.raises(SchemaError, match="'tpu' is not one of 'cpu', 'cuda', 'cuda:N', 'instance'"):
        resolve_device("tpu")
    monkeypatch.setenv("FUNNEL_INSTANCE_DEVICE", "cpu")  # what a runtime sets for its instance
    assert resolve_device("instance") == "cpu"
