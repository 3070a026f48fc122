"""``funnel tf schema``, run as the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from funnel import Ensemble
from funnel_tf import PredictTensorflow

FUNNEL = Path(sys.executable).parent / "funnel"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FUNNEL), *args], capture_output=True, text=True, timeout=180)


def assert_clean_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out.stderr
    for needle in needles:
        assert needle in errors[0], out.stderr


def test_cli_module_does_not_import_tensorflow():
    code = "import funnel_tf.cli, sys; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_help_lists_the_tf_group():
    top = run("--help")
    assert top.returncode == 0 and "tf " in top.stdout
    group = run("tf", "--help")
    assert group.returncode == 0 and "schema" in group.stdout
    schema = run("tf", "schema", "--help")
    assert "--signature" in schema.stdout and "--json" in schema.stdout


def test_plugins_json_lists_register_commands():
    out = run("plugins", "--json")
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert "register_commands" in plugins["tf"]["hooks"]


def test_schema_matches_the_operator(savedmodel_dir, flat_request_schema):
    out = run("tf", "schema", str(savedmodel_dir), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    op = PredictTensorflow(savedmodel_dir)
    assert info["signature"] == "serving_default"
    assert [c["name"] for c in info["inputs"]] == op.input_names == ["item_id", "item_score", "user_age"]
    assert {c["name"]: (c["dtype"], c["dims"]) for c in info["inputs"]} == {
        "item_id": ("int64", [1]), "item_score": ("float32", []), "user_age": ("int32", [1])
    }
    # the outputs are what a graph built on the model sees: (B, 1) → one score per row
    graph_out = Ensemble(["user_age", "item_id", "item_score"] >> op, flat_request_schema).output_schema
    assert info["outputs"] == [{"name": c.name, "dtype": c.dtype, "dims": list(c.dims)} for c in graph_out]
    assert info["outputs"] == [{"name": "output_0", "dtype": "float32", "dims": []}]

    text = run("tf", "schema", str(savedmodel_dir))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[1] == "inputs:" and "outputs:" in lines
    assert lines[2].split() == ["item_id", "int64", "(1,)"]
    assert lines[-1].split() == ["output_0", "float32", "()"]
    assert text.stderr == ""  # no TensorFlow start-up chatter


def test_schema_of_a_string_input_module_and_other_signature(tmp_path):
    import tensorflow as tf

    class Scorer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="genre"),
                                      tf.TensorSpec([None, None], tf.float32, name="emb")])
        def score(self, genre, emb):
            return {"length": tf.cast(tf.strings.length(genre), tf.float32)[:, None],
                    "pair": tf.stack([tf.reduce_sum(emb, 1), tf.reduce_max(emb, 1)], axis=1)}

    module = Scorer()
    path = tmp_path / "scorer"
    tf.saved_model.save(module, str(path), signatures={"rank": module.score})
    out = run("tf", "schema", str(path), "--signature", "rank", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["inputs"] == [{"name": "emb", "dtype": "float32", "dims": [None]},
                              {"name": "genre", "dtype": "str", "dims": []}]
    assert info["outputs"] == [{"name": "length", "dtype": "float32", "dims": []},
                               {"name": "pair", "dtype": "float32", "dims": [2]}]
    assert_clean_error(run("tf", "schema", str(path)), "no signature 'serving_default'", "rank")


def test_bad_path_is_one_error_line(tmp_path):
    assert_clean_error(run("tf", "schema", str(tmp_path / "missing")), "missing")
    (tmp_path / "empty").mkdir()
    assert_clean_error(run("tf", "schema", str(tmp_path / "empty")), "saved_model.pb")
