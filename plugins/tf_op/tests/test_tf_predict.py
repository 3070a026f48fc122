"""PredictTensorflow in-process: equality with the model, schemas, save/load, row-wise lifting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from funnel import ColumnSchema, ColumnSelector, Ensemble, Ragged, Schema, SchemaError, Table
from funnel.errors import ArtifactError
from funnel.operator import NativeTritonModel
from funnel.ops import UnrollFeatures
from funnel_tf import PredictTensorflow

FEATURES = ["user_age", "item_id", "item_score"]


def test_module_import_does_not_import_tensorflow():
    code = "import funnel_tf, funnel_tf.plugin, sys; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_funnel_plugins_lists_tf():
    funnel = Path(sys.executable).parent / "funnel"
    out = subprocess.run([str(funnel), "plugins", "--json"], capture_output=True, text=True, check=True)
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert "tf" in plugins, out.stdout
    assert "tf.PredictTensorflow" in plugins["tf"]["operators"]
    assert not plugins["tf"].get("error")


def test_schema_from_signature(savedmodel_dir, flat_request_schema):
    op = PredictTensorflow(savedmodel_dir)
    assert op.input_names == ["item_id", "item_score", "user_age"]
    assert op.output_names == ["output_0"]
    ens = Ensemble(FEATURES >> op, flat_request_schema)
    # a (B, 1) output comes back as one score per row
    assert ens.output_schema == Schema([ColumnSchema("output_0", "float32")])


def test_threads_set_at_load_in_fresh_process(savedmodel_dir):
    code = (
        "import sys; from funnel_tf import PredictTensorflow; import tensorflow as tf;"
        f"op = PredictTensorflow({str(savedmodel_dir)!r}, intra_op_threads=1, inter_op_threads=1);"
        "print(tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["1", "1"]


@pytest.mark.parametrize("batch", [1, 32])
def test_savedmodel_equals_direct_call(
    savedmodel_dir, keras_model, flat_request_schema, batch, rows_maker, direct
):
    rows = rows_maker(batch, batch)
    ens = Ensemble(FEATURES >> PredictTensorflow(savedmodel_dir), flat_request_schema)
    out = ens.transform(Table(rows))
    assert out.column_names == ["output_0"]
    assert out["output_0"].shape == (batch,)
    np.testing.assert_allclose(out["output_0"], direct(rows), rtol=1e-5, atol=1e-6)


def test_accepts_b1_columns_and_in_memory_model(keras_model, rows_maker, direct):
    req = Schema(
        [
            ColumnSchema("user_age", "int32", dims=(1,)),
            ColumnSchema("item_id", "int64", dims=(1,)),
            ColumnSchema("item_score", "float32", dims=(1,)),
        ]
    )
    rows = rows_maker(3, 5)
    ens = Ensemble(FEATURES >> PredictTensorflow(keras_model), req)
    out = ens.transform(Table({k: v[:, None] for k, v in rows.items()}))
    np.testing.assert_allclose(out["output_0"], direct(rows), rtol=1e-5, atol=1e-6)


def test_safe_upcast_is_accepted(savedmodel_dir, keras_model, rows_maker, direct):
    # int32 item ids feed an int64 input: a safe cast, done at transform time
    req = Schema(
        [
            ColumnSchema("user_age", "int8"),
            ColumnSchema("item_id", "int32"),
            ColumnSchema("item_score", "float16"),
        ]
    )
    rows = rows_maker(4, 6)
    table = Table(
        {
            "user_age": rows["user_age"].astype("int8"),
            "item_id": rows["item_id"].astype("int32"),
            "item_score": rows["item_score"].astype("float16"),
        }
    )
    out = Ensemble(FEATURES >> PredictTensorflow(savedmodel_dir), req).transform(table)
    want = direct({**rows, "item_score": rows["item_score"].astype("float16").astype("float32")})
    np.testing.assert_allclose(out["output_0"], want, rtol=1e-5, atol=1e-6)


def test_wrong_dtype_and_missing_column_fail_at_build(savedmodel_dir):
    op = PredictTensorflow(savedmodel_dir)
    bad_dtype = Schema(
        [
            ColumnSchema("user_age", "int32"),
            ColumnSchema("item_id", "float64"),
            ColumnSchema("item_score", "float32"),
        ]
    )
    with pytest.raises(SchemaError, match=r"'item_id'.*float64.*int64"):
        Ensemble(FEATURES >> op, bad_dtype)
    strings = Schema(
        [
            ColumnSchema("user_age", "str"),
            ColumnSchema("item_id", "int64"),
            ColumnSchema("item_score", "float32"),
        ]
    )
    with pytest.raises(SchemaError, match=r"'user_age'.*str"):
        Ensemble(FEATURES >> op, strings)
    missing = Schema([ColumnSchema("user_age", "int32"), ColumnSchema("item_id", "int64")])
    with pytest.raises(SchemaError, match=r"PredictTensorflow.*'item_score'.*missing"):
        Ensemble(["user_age", "item_id"] >> op, missing)
    wrong_shape = Schema(
        [
            ColumnSchema("user_age", "int32", dims=(3,)),
            ColumnSchema("item_id", "int64"),
            ColumnSchema("item_score", "float32"),
        ]
    )
    with pytest.raises(SchemaError, match=r"'user_age'.*shape"):
        Ensemble(FEATURES >> op, wrong_shape)


def test_unaligned_list_input_is_refused(savedmodel_dir):
    # a list column next to per-row columns: core's lifting rule refuses the mix at bind time
    req = Schema(
        [
            ColumnSchema("user_age", "int32"),
            ColumnSchema("item_id", "int64", dims=(None,)),
            ColumnSchema("item_score", "float32"),
        ]
    )
    with pytest.raises(SchemaError, match=r"PredictTensorflow is row-wise.*\['item_id'\] are ragged lists.*UnrollFeatures"):
        Ensemble(FEATURES >> PredictTensorflow(savedmodel_dir), req)


def test_bad_paths_and_signature(tmp_path, savedmodel_dir):
    with pytest.raises(ArtifactError, match="SavedModel"):
        PredictTensorflow(tmp_path / "nope")
    with pytest.raises(ArtifactError, match=r"no signature 'scoring'.*serving_default"):
        PredictTensorflow(savedmodel_dir, signature="scoring")


def test_save_load_round_trip(savedmodel_dir, keras_model, flat_request_schema, tmp_path, rows_maker, direct):
    ens = Ensemble(FEATURES >> PredictTensorflow(savedmodel_dir), flat_request_schema)
    saved = ens.save(tmp_path / "graph")
    graph_json = (saved / "funnel-graph.json").read_text()
    assert str(savedmodel_dir) not in graph_json  # no path to the user's model
    art = next((saved / "artifacts").iterdir())
    assert (art / "model.savedmodel" / "saved_model.pb").is_file()
    loaded = Ensemble.load(saved)
    rows = rows_maker(7, 9)
    np.testing.assert_allclose(loaded.transform(Table(rows))["output_0"], direct(rows), rtol=1e-5, atol=1e-6)
    assert loaded.output_schema == ens.output_schema


def test_config_round_trip_and_zero_rows(savedmodel_dir, rows_maker):
    with pytest.warns(RuntimeWarning, match="already initialized"):  # TF ran in this process already
        op = PredictTensorflow(savedmodel_dir, intra_op_threads=2)
    config = op.to_config()
    assert config["signature"] == "serving_default"
    assert config["intra_op_threads"] == 2
    assert [s["name"] for s in config["inputs"]] == ["item_id", "item_score", "user_age"]
    assert config["outputs"] == [{"name": "output_0", "dtype": "float32", "shape": [None, 1]}]
    json.dumps(config)
    clone = PredictTensorflow.from_config(config)
    assert clone.to_config() == config
    with pytest.raises(ArtifactError, match="load_artifacts"):
        clone.transform(Table(rows_maker(0, 2)))
    empty = op.transform(Table({k: v[:0] for k, v in rows_maker(0, 1).items()}))
    assert empty.num_rows == 0 and empty["output_0"].shape == (0,)


def test_rowwise_over_candidate_lists(savedmodel_dir, keras_model, direct):
    """After UnrollFeatures the model runs once on all candidates; scores regroup per user."""
    req = Schema(
        [
            ColumnSchema("user_age", "int32"),
            ColumnSchema("item_id", "int64", dims=(None,)),
            ColumnSchema("item_score", "float32", dims=(None,)),
        ]
    )
    unrolled = ["item_id", "item_score"] >> UnrollFeatures("item_id", ColumnSelector(["user_age"]))
    ens = Ensemble(unrolled >> PredictTensorflow(savedmodel_dir), req)
    assert ens.output_schema["output_0"].is_ragged
    rng = np.random.default_rng(11)
    lengths = [3, 0, 5, 1]
    items = Ragged.from_lengths(rng.integers(0, 50, sum(lengths)).astype("int64"), lengths)
    scores = Ragged(rng.random(sum(lengths)).astype("float32"), items.offsets)
    ages = np.array([20, 30, 40, 50], dtype="int32")
    out = ens.transform(Table({"user_age": ages, "item_id": items, "item_score": scores}))
    got = out["output_0"]
    assert isinstance(got, Ragged) and got.same_offsets(items)
    flat = {"user_age": np.repeat(ages, lengths), "item_id": items.values, "item_score": scores.values}
    np.testing.assert_allclose(got.values, direct(flat), rtol=1e-5, atol=1e-6)


def test_native_triton_model(savedmodel_dir, tmp_path, rows_maker):
    op = PredictTensorflow(savedmodel_dir)
    native = op.native_triton_model()
    assert isinstance(native, NativeTritonModel)
    assert native.platform == "tensorflow_savedmodel" and native.backend == "tensorflow"
    assert native.artifact == "model.savedmodel"
    assert native.inputs == {"item_id": "item_id", "item_score": "item_score", "user_age": "user_age"}
    assert native.outputs == {"output_0": "output_0"}
    version_dir = tmp_path / "ranker" / "1"
    op.write_native_model(version_dir)
    written = version_dir / "model.savedmodel"
    assert (written / "saved_model.pb").is_file() and (written / "variables").is_dir()
    # what Triton's TF backend serves: funnel's per-row shapes, the same names and numbers
    import tensorflow as tf

    sig = tf.saved_model.load(str(written)).signatures["serving_default"]
    ins = sig.structured_input_signature[1]
    assert {k: (v.shape.as_list(), v.dtype.name) for k, v in ins.items()} == {
        "item_id": ([None], "int64"),
        "item_score": ([None], "float32"),
        "user_age": ([None], "int32"),
    }
    assert {k: v.shape.as_list() for k, v in sig.structured_outputs.items()} == {"output_0": [None]}
    rows = rows_maker(5, 7)
    served = sig(**{k: tf.constant(v) for k, v in rows.items()})["output_0"].numpy()
    np.testing.assert_allclose(served, op.transform(Table(rows))["output_0"], rtol=1e-6)


def test_ensemble_mode_export_declares_the_native_model(savedmodel_dir, flat_request_schema, tmp_path):
    ens = Ensemble(FEATURES >> PredictTensorflow(savedmodel_dir), flat_request_schema)
    repo = ens.export(tmp_path / "repo", mode="ensemble")
    (model_dir,) = [d for d in repo.iterdir() if d.name.endswith("_PredictTensorflow")]
    config = (model_dir / "config.pbtxt").read_text()
    assert 'platform: "tensorflow_savedmodel"' in config
    for name in ("user_age", "item_id", "item_score", "output_0"):
        assert f'name: "{name}"' in config
    assert (model_dir / "1" / "model.savedmodel" / "saved_model.pb").is_file()
    assert not list(model_dir.rglob("model.py"))  # served by the TF backend, not Python


def test_keras_file_with_custom_objects(tmp_path):
    import keras

    @keras.saving.register_keras_serializable(package="funnel_tf_test")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inp = keras.Input(shape=(2,), name="x", dtype="float32")
    model = keras.Model({"x": inp}, {"y": Doubler()(inp)})
    path = tmp_path / "m.keras"
    model.save(path)
    op = PredictTensorflow(path, custom_objects={"Doubler": Doubler})
    ens = Ensemble(["x"] >> op, Schema([ColumnSchema("x", "float32", dims=(2,))]))
    out = ens.transform(Table({"x": np.array([[1.0, 2.0]], dtype="float32")}))
    np.testing.assert_allclose(out["y"], [[2.0, 4.0]])
    assert ens.output_schema["y"].dims == (2,)


def test_tf_saved_model_save_with_string_input(tmp_path):
    """A plain tf.Module saved with tf.saved_model.save: string input, two named outputs."""
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self):
            super().__init__()
            self.weight = tf.Variable(2.0)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="genre"),
                tf.TensorSpec([None, 3], tf.float32, name="emb"),
            ]
        )
        def score(self, genre, emb):
            length = tf.cast(tf.strings.length(genre), tf.float32)
            return {"length": length[:, None] * self.weight, "norm": tf.reduce_sum(emb * emb, axis=1)}

    module = Scorer()
    path = tmp_path / "scorer"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.score})
    op = PredictTensorflow(path)
    req = Schema([ColumnSchema("genre", "str"), ColumnSchema("emb", "float32", dims=(3,))])
    ens = Ensemble(["genre", "emb"] >> op, req)
    assert ens.output_schema == Schema([ColumnSchema("length", "float32"), ColumnSchema("norm", "float32")])
    out = ens.transform(
        Table({"genre": np.array(["drama", "sci-fi"], dtype=object), "emb": np.ones((2, 3), dtype="float32")})
    )
    np.testing.assert_allclose(out["length"], [10.0, 12.0])
    np.testing.assert_allclose(out["norm"], [3.0, 3.0])
    with pytest.raises(SchemaError, match=r"'genre'.*int64.*str"):
        Ensemble(
            ["genre", "emb"] >> op,
            Schema([ColumnSchema("genre", "int64"), ColumnSchema("emb", "float32", dims=(3,))]),
        )
