"""KServe manifests for serving an exported funnel repository with KServe's Triton runtime.

``kserve_manifest(repo, storage_uri=..., image=...)`` reads the export (models, instance kind
and count from ``config.pbtxt``, plugins from ``funnel-manifest.json``, environment variables
its operators read) and returns the documents to ``kubectl apply``: an ``InferenceService``
(``serving.kserve.io/v1beta1``, model format ``triton``, protocol v2) and, for an
S3-compatible endpoint, the ``ServiceAccount`` whose annotations tell KServe's storage
initializer where the bucket is. Credentials never appear: the service account names a
``Secret`` you create from your environment (docs/deploy.md shows the command).

:func:`validate_manifest` checks an InferenceService document against the ``kserve``
Python package's model classes (every field known, required fields present, types right);
:func:`kserve_manifest` always does, so writing a manifest needs ``pip install
"funnel-scale[kserve]"``. Importing this module needs only funnel.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from funnel.errors import FunnelError

__all__ = ["DeployError", "RepositoryInfo", "read_repository", "kserve_manifest", "validate_manifest", "to_yaml"]

#: KServe's Triton runtime listens here (kserve-tritonserver ServingRuntime)
HTTP_PORT = 8080
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")


class DeployError(FunnelError):
    """A manifest could not be written (bad option, repository not deployable)."""


@dataclass
class RepositoryInfo:
    """What a manifest needs to know about an export."""

    models: list[str]
    entry_model: str | None
    instance_kind: str  # "cpu" or "gpu"
    instance_count: int
    plugins: list[dict[str, Any]]
    env_vars: dict[str, list[str]] = field(default_factory=dict)  # env var → paths it overrides


def read_repository(path: str | os.PathLike[str]) -> RepositoryInfo:
    """Models, instance groups, plugins and serve-time environment variables of an export."""
    from funnel_scale.storage import check_repository  # noqa: PLC0415

    root = Path(path)
    check = check_repository(root)
    manifest_file = root / "funnel-manifest.json"
    manifest = msgspec.json.decode(manifest_file.read_bytes()) if manifest_file.is_file() else {}
    kinds, counts = set(), []
    for model in check.models:
        text = (root / model / "config.pbtxt").read_text()
        for group in re.finditer(r"instance_group\s*\[(.*?)\]", text, re.S):
            body = group.group(1)
            count = re.search(r"count\s*:\s*(\d+)", body)
            kind = re.search(r"kind\s*:\s*(KIND_\w+)", body)
            counts.append(int(count.group(1)) if count else 1)
            kinds.add(kind.group(1) if kind else "KIND_CPU")
    env_vars: dict[str, list[str]] = {}
    for ext in check.overridable:
        env_vars.setdefault(ext.env_vars[0], []).append(f"{ext.operator}: {ext.key} = {ext.value}")
    return RepositoryInfo(
        models=check.models,
        entry_model=manifest.get("entry_model"),
        instance_kind="gpu" if "KIND_GPU" in kinds else "cpu",
        instance_count=max(counts) if counts else 1,
        plugins=list(manifest.get("plugins", [])),
        env_vars=env_vars,
    )


def _kserve_storage_uri(uri: str) -> tuple[str, dict[str, str]]:
    """KServe's form of a storage URI (``s3://bucket/path``) and the S3 annotations an
    endpoint given Triton-style (``s3://host:port/bucket/path``) needs."""
    if not uri.startswith(("s3://", "gs://", "pvc://", "https://", "hdfs://", "webhdfs://")):
        raise DeployError(f"--storage-uri {uri!r}: use s3://BUCKET/PATH (or s3://HOST:PORT/BUCKET/PATH), gs:// or pvc://")
    if not uri.startswith("s3://"):
        return uri, {}
    from funnel_scale.storage import parse_s3_url  # noqa: PLC0415

    loc = parse_s3_url(uri)
    if not loc.prefix:
        raise DeployError(f"--storage-uri {uri!r}: name the repository's path inside the bucket")
    annotations: dict[str, str] = {}
    if loc.endpoint_url:
        scheme, host = loc.endpoint_url.split("://", 1)
        annotations = {"serving.kserve.io/s3-endpoint": host, "serving.kserve.io/s3-usehttps": "1" if scheme == "https" else "0"}
    return f"s3://{loc.bucket}/{loc.prefix}", annotations


def _quantity(value: str, what: str) -> str:
    if not _QUANTITY.match(str(value)):
        raise DeployError(f"{what} {value!r} is not a Kubernetes quantity (e.g. 2, 500m, 8Gi)")
    return str(value)


def kserve_manifest(
    repository: str | os.PathLike[str],
    storage_uri: str,
    image: str,
    name: str = "funnel",
    namespace: str | None = None,
    replicas: int = 1,
    max_replicas: int | None = None,
    cpu: str = "2",
    memory: str = "4Gi",
    gpus: int | None = None,
    env: dict[str, str] | None = None,
    credentials_secret: str = "funnel-s3-credentials",
    region: str | None = None,
    service_account: str | None = None,
) -> list[dict[str, Any]]:
    """The documents (ServiceAccount for S3 when needed, then the InferenceService) to apply.

    ``image``: a Triton image with funnel and the export's plugins installed (the stock
    ``tritonserver`` image has no funnel). ``gpus``: GPUs per replica (default: 1 when the
    export has KIND_GPU instances, else 0; a GPU export with ``gpus=0`` is refused).
    ``env``: serve-time variables; every variable the export's operators read to find
    paths outside the repository (e.g. ``FUNNEL_FEAST_REPO_PATH``) must be given.
    """
    info = read_repository(repository)
    if not _NAME.match(name) or len(name) > 45:
        raise DeployError(f"name {name!r} must be a DNS label: lower-case letters, digits and '-', at most 45 characters")
    if not image or ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
        raise DeployError(f"--image {image!r}: give a tagged image (registry/name:tag) with funnel and its plugins installed")
    if replicas < 1 or (max_replicas is not None and max_replicas < replicas):
        raise DeployError(f"replicas must be >= 1 and max replicas >= replicas (got {replicas}, {max_replicas})")
    gpus = (1 if info.instance_kind == "gpu" else 0) if gpus is None else int(gpus)
    if info.instance_kind == "gpu" and gpus < 1:
        raise DeployError(f"{repository} was exported with KIND_GPU instances; give --gpus >= 1 or export with instance_kind='cpu'")
    env = dict(env or {})
    missing = {v: paths for v, paths in info.env_vars.items() if v not in env}
    if missing:
        lines = "\n  ".join(f"--env {v}=PATH_IN_THE_CONTAINER   (overrides {'; '.join(p)})" for v, p in missing.items())
        raise DeployError(f"the export reads paths from the exporting machine; set where they are in the container:\n  {lines}")
    for key in env:
        if re.search(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY", key, re.I):
            raise DeployError(f"--env {key}: credentials do not go into a manifest; put them in the Secret "
                              f"{credentials_secret!r} (docs/deploy.md)")
    uri, s3_annotations = _kserve_storage_uri(storage_uri)
    limits = {"cpu": _quantity(cpu, "--cpu"), "memory": _quantity(memory, "--memory")}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    probe = {"httpGet": {"path": "/v2/health/ready", "port": HTTP_PORT}, "periodSeconds": 5, "timeoutSeconds": 2,
             "failureThreshold": 3}
    model: dict[str, Any] = {
        "modelFormat": {"name": "triton"},
        "runtime": "kserve-tritonserver",
        "protocolVersion": "v2",
        "storageUri": uri,
        "image": image,
        # strict readiness: ready only when every model loaded; exit on a model that fails
        "args": ["--strict-readiness=true", "--exit-on-error=true", "--allow-metrics=true"],
        "env": [{"name": k, "value": str(v)} for k, v in sorted(env.items())],
        "resources": {"requests": dict(limits), "limits": dict(limits)},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "httpGet": {"path": "/v2/health/live", "port": HTTP_PORT}, "failureThreshold": 6},
        # TensorFlow, Feast and FAISS load inside the Python backend: allow minutes, not seconds
        "startupProbe": {**probe, "failureThreshold": 120},
    }
    if not model["env"]:
        del model["env"]
    predictor: dict[str, Any] = {"minReplicas": replicas, "maxReplicas": max_replicas or replicas, "model": model}
    docs: list[dict[str, Any]] = []
    meta_ns = {"namespace": namespace} if namespace else {}
    if service_account:
        predictor["serviceAccountName"] = service_account  # yours: it carries the S3 settings
    elif uri.startswith("s3://"):
        sa_name = f"{name}-s3"
        annotations = dict(s3_annotations)
        annotations["serving.kserve.io/s3-region"] = region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        docs.append({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": sa_name, **meta_ns, "annotations": annotations},
            "secrets": [{"name": credentials_secret}],
        })
        predictor["serviceAccountName"] = sa_name
    plugins = ",".join(f"{p['distribution']}=={p['version']}" if p.get("version") else p["distribution"] for p in info.plugins)
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            **meta_ns,
            "labels": {"app.kubernetes.io/managed-by": "funnel"},
            "annotations": {
                "funnel/models": ",".join(info.models),
                "funnel/entry-model": info.entry_model or "",
                "funnel/instances-per-replica": f"{info.instance_count} x {info.instance_kind}",
                "funnel/plugins": plugins,
            },
        },
        "spec": {"predictor": predictor},
    }
    validate_manifest(isvc)
    docs.append(isvc)
    return docs


# -- validation against the kserve package -----------------------------------------------------
_PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def _model_class(type_name: str) -> Any:
    import kserve  # noqa: PLC0415
    import kubernetes.client  # noqa: PLC0415

    cls = getattr(kserve, type_name, None) or getattr(kubernetes.client, type_name, None)
    if cls is None:
        raise DeployError(f"no model class {type_name} in kserve or kubernetes.client")
    return cls


def _build(value: Any, type_name: str, where: str) -> Any:
    type_name = type_name.strip()
    if type_name.startswith(("List[", "Dict[")):  # newer generators: List[X], Dict[str, X]
        type_name = f"list[{type_name[5:-1]}]" if type_name[0] == "L" else f"dict({type_name[5:-1]})"
    if type_name.startswith("list["):
        if not isinstance(value, list):
            raise DeployError(f"{where}: expected a list ({type_name}), got {type(value).__name__}")
        return [_build(v, type_name[5:-1], f"{where}[{i}]") for i, v in enumerate(value)]
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            raise DeployError(f"{where}: expected a mapping ({type_name}), got {type(value).__name__}")
        inner = type_name[5:-1].split(",", 1)[1].strip()
        return {k: _build(v, inner, f"{where}.{k}") for k, v in value.items()}
    if type_name in ("object", "datetime"):
        return value
    if type_name in _PRIMITIVES:
        if not isinstance(value, _PRIMITIVES[type_name]) or (type_name == "int" and isinstance(value, bool)):
            raise DeployError(f"{where}: expected {type_name}, got {value!r}")
        return value
    cls = _model_class(type_name)
    if not isinstance(value, dict):
        raise DeployError(f"{where}: expected an object ({type_name}), got {type(value).__name__}")
    by_key = {v: k for k, v in cls.attribute_map.items()}
    kwargs = {}
    for key, item in value.items():
        if key not in by_key:
            raise DeployError(f"{where}.{key}: not a field of {type_name} (fields: {sorted(by_key)})")
        attr = by_key[key]
        kwargs[attr] = _build(item, cls.openapi_types[attr], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise DeployError(f"{where}: invalid {type_name}: {exc}") from exc


def validate_manifest(doc: dict[str, Any]) -> dict[str, Any]:
    """Check an InferenceService document against the kserve package's model classes (every field
    known, types right, required ones present); returns what kserve serializes back. Raises
    DeployError naming the field.

    Runs in a fresh interpreter: kserve carries its own copy of the ``inference`` protobuf
    package that ``tritonclient.grpc`` registers too, and the two cannot be imported into one
    process (whichever comes second fails with "duplicate symbol 'inference.ServerLiveRequest'").
    """
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    if doc.get("apiVersion") != "serving.kserve.io/v1beta1" or doc.get("kind") != "InferenceService":
        raise DeployError("not a serving.kserve.io/v1beta1 InferenceService document")
    proc = subprocess.run(
        [sys.executable, "-m", "funnel_scale.deploy"], input=json.dumps(doc), capture_output=True, text=True, timeout=300
    )
    if proc.returncode == 2:
        raise DeployError(proc.stderr.strip())
    if proc.returncode != 0:
        raise DeployError(f"validating the manifest with the kserve package failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def _validate_here(doc: dict[str, Any]) -> dict[str, Any]:
    import kserve  # noqa: PLC0415

    isvc = _build(doc, "V1beta1InferenceService", "InferenceService")
    predictor = isvc.spec.predictor
    if predictor.model is None or predictor.model.model_format is None:
        raise DeployError("InferenceService.spec.predictor.model.modelFormat is required")
    return kserve.ApiClient().sanitize_for_serialization(isvc)


def to_yaml(docs: list[dict[str, Any]]) -> str:
    """The documents as one multi-document YAML stream (``kubectl apply -f``)."""
    try:
        import yaml  # noqa: PLC0415
    except ImportError:  # JSON is YAML: one document per '---'
        import json  # noqa: PLC0415

        return "\n---\n".join(json.dumps(d, indent=2) for d in docs) + "\n"
    return yaml.safe_dump_all(docs, sort_keys=False)


if __name__ == "__main__":  # validate_manifest's fresh interpreter: JSON document on stdin
    import json
    import sys

    try:
        import kserve  # noqa: F401
    except ImportError as exc:
        print(f"checking the manifest against KServe's model classes needs the kserve package, which "
              f"{sys.executable} cannot import ({exc}): pip install \"funnel-scale[kserve]\"", file=sys.stderr)
        sys.exit(2)
    try:
        print(json.dumps(_validate_here(json.loads(sys.stdin.read()))))
    except DeployError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
