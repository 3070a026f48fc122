"""`funnel deploy kserve` without any backend plugin: InferenceService manifests for an export of
core's demo graph, validated against the kserve package's model classes in a fresh interpreter.
(The Feast repository path a manifest must set is tests/test_kserve.py.)"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from funnel_testing import demo_ensemble

from funnel_scale.deploy import DeployError, kserve_manifest, read_repository, validate_manifest

IMAGE = "registry.example.com/recsys/funnel-triton:24.10"


@pytest.fixture(scope="module")
def cpu_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_ensemble().export(tmp_path_factory.mktemp("k") / "cpu", instance_count=3)


def test_cli_writes_a_valid_inference_service(funnel_cli, cpu_repo: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak-this-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    out = tmp_path / "isvc.yaml"
    result = CliRunner().invoke(funnel_cli, [
        "deploy", "kserve", str(cpu_repo), "--storage-uri", "s3://minio.data:9000/models/recsys/v1", "--image", IMAGE,
        "--name", "recsys", "--namespace", "ml", "--replicas", "2", "--max-replicas", "6", "--cpu", "4",
        "--memory", "8Gi", "-o", str(out),
    ])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "do-not-leak-this-secret" not in text
    sa, doc = list(yaml.safe_load_all(text))
    assert sa["kind"] == "ServiceAccount" and sa["secrets"] == [{"name": "funnel-s3-credentials"}]
    assert sa["metadata"]["annotations"] == {
        "serving.kserve.io/s3-endpoint": "minio.data:9000", "serving.kserve.io/s3-usehttps": "0",
        "serving.kserve.io/s3-region": "eu-west-1",
    }
    # what kserve serializes back is exactly what was written: no field was dropped as unknown
    back = validate_manifest(doc)
    assert back["spec"]["predictor"]["model"].pop("name") == ""  # the class's own default
    assert back == doc
    pred = back["spec"]["predictor"]
    assert (pred["minReplicas"], pred["maxReplicas"], pred["serviceAccountName"]) == (2, 6, "recsys-s3")
    model = pred["model"]
    assert model["modelFormat"]["name"] == "triton" and model["protocolVersion"] == "v2"
    assert model["runtime"] == "kserve-tritonserver" and model["image"] == IMAGE
    assert model["storageUri"] == "s3://models/recsys/v1"  # KServe's form; the endpoint is on the service account
    assert model["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"} == model["resources"]["requests"]
    assert model["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert model["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert model["startupProbe"]["failureThreshold"] * model["startupProbe"]["periodSeconds"] >= 300
    assert "--strict-readiness=true" in model["args"]
    assert back["metadata"]["annotations"]["funnel/instances-per-replica"] == "3 x cpu"
    # the distributions whose operators the graph uses (core's, and funnel-testing's test operators)
    want = ",".join(f"{d}=={importlib.metadata.version(d)}" for d in ("funnel", "funnel-testing"))
    assert back["metadata"]["annotations"]["funnel/plugins"] == want
    stdout = CliRunner().invoke(funnel_cli, ["deploy", "kserve", str(cpu_repo), "--storage-uri", "s3://b/m",
                                             "--image", IMAGE])
    assert stdout.exit_code == 0 and "kind: InferenceService" in stdout.output, stdout.output


def test_gpu_export_gets_a_gpu(tmp_path: Path) -> None:
    repo = demo_ensemble().export(tmp_path / "gpu", instance_kind="gpu")
    assert read_repository(repo).instance_kind == "gpu"
    docs = kserve_manifest(repo, storage_uri="s3://bucket/models", image=IMAGE, service_account="ml-s3")
    (doc,) = docs  # an existing service account: none written
    model = validate_manifest(doc)["spec"]["predictor"]["model"]
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"
    with pytest.raises(DeployError, match="KIND_GPU.*--gpus >= 1"):
        kserve_manifest(repo, storage_uri="s3://bucket/models", image=IMAGE, gpus=0)


def test_kserve_never_enters_this_process(cpu_repo: Path) -> None:
    import tritonclient.grpc  # noqa: F401, PLC0415 - registers the 'inference' protobuf package

    validate_manifest(kserve_manifest(cpu_repo, storage_uri="s3://bucket/m", image=IMAGE)[-1])
    assert "kserve" not in sys.modules  # so funnel's gRPC client keeps working next to it


def test_without_kserve_the_error_says_what_to_install(cpu_repo: Path, tmp_path: Path, monkeypatch) -> None:
    """The validating interpreter cannot import kserve (shadowed here by a module that fails to
    import, as an uninstalled package does): the error names the extra to install."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "kserve.py").write_text("raise ModuleNotFoundError(\"No module named 'kserve'\", name='kserve')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(shadow), os.environ.get("PYTHONPATH")])))
    with pytest.raises(DeployError, match=r"needs the kserve package.*No module named 'kserve'.*funnel-scale\[kserve\]"):
        kserve_manifest(cpu_repo, storage_uri="s3://bucket/m", image=IMAGE)


def test_validation_names_the_bad_field(cpu_repo: Path) -> None:
    doc = kserve_manifest(cpu_repo, storage_uri="s3://bucket/m", image=IMAGE)[-1]
    doc["spec"]["predictor"]["model"]["storageURI"] = doc["spec"]["predictor"]["model"].pop("storageUri")
    with pytest.raises(DeployError, match=r"predictor\.model\.storageURI: not a field of V1beta1ModelSpec"):
        validate_manifest(doc)
    doc = kserve_manifest(cpu_repo, storage_uri="s3://bucket/m", image=IMAGE)[-1]
    doc["spec"]["predictor"]["minReplicas"] = "two"
    with pytest.raises(DeployError, match=r"minReplicas: expected int"):
        validate_manifest(doc)
    doc = kserve_manifest(cpu_repo, storage_uri="s3://bucket/m", image=IMAGE)[-1]
    del doc["spec"]["predictor"]["model"]["modelFormat"]
    with pytest.raises(DeployError, match="V1beta1ModelSpec: Invalid value for `model_format`"):
        validate_manifest(doc)
    for kwargs, message in (
        ({"image": "funnel"}, "tagged image"),
        ({"cpu": "lots"}, "not a Kubernetes quantity"),
        ({"name": "Bad_Name"}, "DNS label"),
        ({"storage_uri": "/local/repo"}, "storage-uri"),
        ({"replicas": 3, "max_replicas": 2}, "max replicas >= replicas"),
    ):
        args = {"storage_uri": "s3://bucket/m", "image": IMAGE, **kwargs}
        with pytest.raises(DeployError, match=message):
            kserve_manifest(cpu_repo, **args)
