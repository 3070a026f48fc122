"""Ensemble mode with an operator that declares a native Triton backend."""

from __future__ import annotations

import json
from pathlib import Path

from funnel import NativeTritonModel, Node
from funnel.ensemble import Ensemble
from funnel.ops import FilterCandidates, UnrollFeatures
from funnel_testing import REQUEST_SCHEMA, LinearScore, TopByScore


class NativeScore(LinearScore):
    """LinearScore that says a native backend can serve it (like PredictTensorflow does)."""

    def native_triton_model(self) -> NativeTritonModel:
        return NativeTritonModel(platform="tensorflow_savedmodel", backend="tensorflow", artifact="model.savedmodel",
                                 inputs={"candidates": "item", "user_age": "age"}, outputs={"score": "output_0"})

    def write_native_model(self, version_dir: Path) -> None:
        (version_dir / "model.savedmodel").mkdir()
        (version_dir / "model.savedmodel" / "saved_model.pb").write_bytes(b"stand-in")


def graph() -> Ensemble:
    filtered = Node.coerce(["candidates", "seen"]) >> FilterCandidates("seen", input_col="candidates")
    unrolled = filtered >> UnrollFeatures("candidates", Node.coerce(["user_id", "user_age"]))
    scored = unrolled >> NativeScore()
    return Ensemble((unrolled["candidates"] + scored) >> TopByScore(3), REQUEST_SCHEMA)


def test_native_model_directory_and_config(tmp_path):
    repo = graph().export(tmp_path / "r", mode="ensemble")
    model = repo / "5_NativeScore"
    config = (model / "config.pbtxt").read_text()
    assert 'platform: "tensorflow_savedmodel"' in config and 'backend: "tensorflow"' in config
    assert (model / "1" / "model.savedmodel" / "saved_model.pb").is_file()
    assert not (model / "1" / "model.py").exists()
    assert 'name: "item"' in config and 'name: "output_0"' in config  # the backend's tensor names
    ens = (repo / "funnel" / "config.pbtxt").read_text()
    assert 'model_name: "5_NativeScore"' in ens
    manifest = json.loads((repo / "funnel-manifest.json").read_text())
    assert "5_NativeScore" in json.dumps(manifest)


def test_native_backends_off_uses_the_python_runner(tmp_path):
    repo = graph().export(tmp_path / "r", mode="ensemble", native_backends=False)
    model = repo / "5_NativeScore"
    assert (model / "1" / "model.py").is_file()
    assert 'backend: "python"' in (model / "config.pbtxt").read_text()
