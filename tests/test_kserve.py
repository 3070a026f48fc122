"""`funnel deploy kserve` (funnel-scale) for exports with plugin operators: the plugins an image
must hold (FAISS) and the Feast repository path a manifest must set, validated against the
kserve package's model classes; no cluster. The manifest itself (fields, probes, GPUs, the
validation errors) is tested with core's demo graph in plugins/scale/tests/test_deploy.py."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from funnel import ColumnSchema, Ensemble, Schema
from funnel.cli import cli

from funnel_scale import plugin
from funnel_scale.deploy import DeployError, kserve_manifest, validate_manifest

IMAGE = "registry.example.com/recsys/funnel-triton:24.10"


@pytest.fixture(scope="module")
def faiss_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from funnel_faiss import QueryFaiss, build_index  # noqa: PLC0415

    index = build_index(np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32))
    ens = Ensemble(["query"] >> QueryFaiss(index, topk=5), Schema([ColumnSchema("query", "float32", dims=(4,))]))
    return ens.export(tmp_path_factory.mktemp("k") / "cpu", instance_count=3)


@pytest.fixture(scope="module")
def feast_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from funnel_feast import QueryFeast, build_feature_repo  # noqa: PLC0415

    root = tmp_path_factory.mktemp("kf")
    users = pd.DataFrame({"user_id": np.arange(1, 4, dtype=np.int64), "age": np.arange(3, dtype=np.int64)})
    repo = build_feature_repo(root / "feast", {"user_features": ("user_id", users)}, project="kservetest")
    ens = Ensemble(["user_id"] >> QueryFeast.from_feature_view(repo, "user_features", column="user_id"),
                   Schema([ColumnSchema("user_id", "int64")]))
    return ens.export(root / "repo")


def test_cli_names_the_plugins_the_image_needs(faiss_repo: Path, tmp_path: Path) -> None:
    """`funnel deploy kserve` on a FAISS export: the manifest records funnel-faiss (with its
    version) as a plugin the image must contain, and kserve reads it back unchanged."""
    plugin.register_commands(cli=cli)  # what `funnel` does at start with funnel-scale installed
    out = tmp_path / "isvc.yaml"
    result = CliRunner().invoke(cli, [
        "deploy", "kserve", str(faiss_repo), "--storage-uri", "s3://minio.data:9000/models/recsys/v1",
        "--image", IMAGE, "--name", "recsys", "-o", str(out),
    ])
    assert result.exit_code == 0, result.output
    sa, doc = list(yaml.safe_load_all(out.read_text()))
    assert sa["kind"] == "ServiceAccount" and doc["kind"] == "InferenceService"
    plugins = doc["metadata"]["annotations"]["funnel/plugins"].split(",")
    assert plugins == [f"funnel-faiss=={importlib.metadata.version('funnel-faiss')}"]
    back = validate_manifest(doc)
    back["spec"]["predictor"]["model"].pop("name")
    assert back == doc
    assert doc["metadata"]["annotations"]["funnel/instances-per-replica"] == "3 x cpu"


def test_feast_path_must_be_given_for_the_container(feast_repo: Path) -> None:
    with pytest.raises(DeployError, match=r"--env FUNNEL_FEAST_REPO_PATH=PATH_IN_THE_CONTAINER.*repo_path"):
        kserve_manifest(feast_repo, storage_uri="s3://bucket/m", image=IMAGE)
    docs = kserve_manifest(feast_repo, storage_uri="s3://bucket/m", image=IMAGE,
                           env={"FUNNEL_FEAST_REPO_PATH": "/mnt/feature_repo"})
    model = validate_manifest(docs[-1])["spec"]["predictor"]["model"]
    assert [(e["name"], e["value"]) for e in model["env"]] == [("FUNNEL_FEAST_REPO_PATH", "/mnt/feature_repo")]
    with pytest.raises(DeployError, match="credentials do not go into a manifest"):
        kserve_manifest(feast_repo, storage_uri="s3://bucket/m", image=IMAGE,
                        env={"FUNNEL_FEAST_REPO_PATH": "/x", "AWS_SECRET_ACCESS_KEY": "s"})
