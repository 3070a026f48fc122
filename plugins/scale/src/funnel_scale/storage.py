"""Model repositories on object storage: check an export is self-contained, push it to ``s3://``.

Triton reads a repository from S3 itself (``--model-repository=s3://...``) and copies each
model directory to a local temporary directory before loading it, so every model directory
must hold everything its model reads (``funnel-graph.json``, ``artifacts/``), and no path in
a graph may point at the exporting machine — except the ones an operator lets the serving
environment override (the Feast repository: ``$FUNNEL_FEAST_REPO_PATH``). See docs/deploy.md.

URLs follow Triton: ``s3://bucket/path`` (AWS) or ``s3://host:port/bucket/path`` for an
S3-compatible endpoint (MinIO, Ceph, moto); ``s3://https://host:port/...`` selects TLS.
Credentials come only from the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION`` or boto3's standard chain: profile, instance
role) — never from arguments, and a repository that contains the secret key is refused.

boto3 is imported only when pushing (``pip install "funnel-scale[s3]"``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from funnel.errors import FunnelError

__all__ = [
    "S3Location",
    "parse_s3_url",
    "ExternalPath",
    "RepositoryCheck",
    "check_repository",
    "push_repository",
    "StorageError",
    "CONFIG_FILES",
]

#: the files of an exported model directory that hold operator configs
CONFIG_FILES = ("funnel-graph.json", "funnel-op.json")
_TEXT_SUFFIXES = {".json", ".pbtxt", ".py", ".yaml", ".yml", ".txt", ".cfg", ".toml", ".env"}
_ENDPOINT = re.compile(r"^s3://(?:(https?)://)?([0-9A-Za-z.\-]+):(\d+)/([^/]+)(?:/(.*))?$")
_AWS = re.compile(r"^s3://([^/:]+)(?:/(.*))?$")


class StorageError(FunnelError):
    """A repository could not be checked or pushed (bad URL, missing bucket, credentials, ...)."""


@dataclass(frozen=True)
class S3Location:
    """Where a repository goes: ``endpoint_url`` (None = AWS), ``bucket`` and key ``prefix``."""

    url: str
    bucket: str
    prefix: str
    endpoint_url: str | None = None

    def key(self, relative: str) -> str:
        """The object key of a file at ``relative`` (POSIX) inside the repository."""
        return f"{self.prefix}/{relative}" if self.prefix else relative


def parse_s3_url(url: str) -> S3Location:
    """Parse ``s3://[http(s)://host:port/]bucket[/path]`` the way Triton does."""
    m = _ENDPOINT.match(url)
    if m:
        scheme, host, port, bucket, prefix = m.groups()
        endpoint = f"{scheme or 'http'}://{host}:{port}"
        return S3Location(url, bucket, (prefix or "").strip("/"), endpoint)
    m = _AWS.match(url)
    if m and "://" not in url[5:]:
        bucket, prefix = m.groups()
        return S3Location(url, bucket, (prefix or "").strip("/"), None)
    raise StorageError(
        f"{url!r} is not an S3 repository URL; use s3://BUCKET/PATH (AWS) or "
        "s3://HOST:PORT/BUCKET/PATH for an S3-compatible endpoint (the form tritonserver reads)"
    )


@dataclass(frozen=True)
class ExternalPath:
    """An absolute path in an operator's config: it names the exporting machine's disk."""

    model: str
    file: str
    operator: str
    key: str
    value: str
    env_vars: tuple[str, ...] = ()

    def describe(self) -> str:
        where = f"model {self.model!r} ({self.file}), operator {self.operator}, config {self.key!r} = {self.value!r}"
        if self.env_vars:
            return f"{where}: set {' or '.join('$' + v for v in self.env_vars)} in the server's environment"
        return f"{where}: this path is outside the repository and will not exist where Triton serves it"


@dataclass
class RepositoryCheck:
    """What :func:`check_repository` found: model directories, files, external paths."""

    root: Path
    models: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    total_bytes: int = 0
    external: list[ExternalPath] = field(default_factory=list)

    @property
    def overridable(self) -> list[ExternalPath]:
        """External paths that the serving environment overrides (documented env vars)."""
        return [e for e in self.external if e.env_vars]

    @property
    def blocking(self) -> list[ExternalPath]:
        """External paths nothing overrides: the export is not self-contained."""
        return [e for e in self.external if not e.env_vars]


def _env_overrides(type_name: str) -> dict[str, tuple[str, ...]]:
    """``{config key: env vars}`` an operator type declares (``config_env_overrides``), if installed."""
    try:
        from funnel.registry import get_operator  # noqa: PLC0415

        cls = get_operator(type_name)
    except Exception:  # noqa: BLE001 - not installed here: its paths count as external
        return {}
    raw = getattr(cls, "config_env_overrides", None) or {}
    return {k: tuple([v] if isinstance(v, str) else v) for k, v in dict(raw).items()}


def _walk_strings(value: Any, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk_strings(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk_strings(v, f"{key}[{i}]")


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", value) is not None or value.startswith("..")


def _operator_entries(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(label, type, config)`` of every operator in a funnel-graph.json / funnel-op.json."""
    if "graph" in doc:
        for entry in doc["graph"].get("nodes", []):
            if entry.get("kind") == "op":
                op = entry["op"]
                yield f"{op['type']} (node {entry['index']})", op["type"], op.get("config") or {}
    elif "op" in doc:
        op = doc["op"]
        yield f"{op['type']} (node {doc.get('index')})", op["type"], op.get("config") or {}


def check_repository(path: str | os.PathLike[str]) -> RepositoryCheck:
    """Check that an exported repository is self-contained; raises StorageError when it is not.

    Every top-level directory with a ``config.pbtxt`` is a model; every file is under one
    (a symlink leaving its model directory is refused: Triton copies model directories only);
    absolute paths in operator configs are collected — allowed only where the operator
    declares an environment variable that overrides them at serve time.
    """
    root = Path(path)
    if not root.is_dir():
        raise StorageError(f"{root} is not a directory: pass a model repository written by Ensemble.export()")
    check = RepositoryCheck(root=root.resolve())
    check.models = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "config.pbtxt").is_file())
    if not check.models:
        raise StorageError(
            f"{root} holds no model directory (no <model>/config.pbtxt): not a Triton model repository"
        )
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            file = base / name
            rel = file.relative_to(root)
            top = rel.parts[0]
            if file.is_symlink():
                target = file.resolve()
                model_dir = (check.root / top).resolve()
                if len(rel.parts) == 1 or not target.is_relative_to(model_dir):
                    raise StorageError(
                        f"{rel} is a symlink to {target}, outside model directory {top!r}: Triton copies "
                        "each model directory on its own; copy the file into the model directory"
                    )
                if target.is_dir():
                    raise StorageError(f"{rel} is a symlink to a directory; copy the directory instead")
            check.files.append(rel)
            check.total_bytes += file.stat().st_size
            if len(rel.parts) > 1 and name in CONFIG_FILES:
                check.external += _external_paths(file, rel, top)
    blocking = check.blocking
    if blocking:
        raise StorageError(
            f"{root} is not self-contained:\n  " + "\n  ".join(e.describe() for e in blocking)
            + "\nSave the file as an operator artifact (it then travels inside the model directory)."
        )
    return check


def _external_paths(file: Path, rel: Path, model: str) -> list[ExternalPath]:
    try:
        doc = msgspec.json.decode(file.read_bytes())
    except msgspec.DecodeError as exc:
        raise StorageError(f"{rel} is not valid JSON: {exc}") from exc
    found = []
    for label, type_name, config in _operator_entries(doc):
        overrides = None
        for key, value in _walk_strings(config, ""):
            if not _looks_like_path(value):
                continue
            if overrides is None:
                overrides = _env_overrides(type_name)
            found.append(ExternalPath(model, rel.as_posix(), label, key, value, overrides.get(key.split(".")[0], ())))
    return found


def _refuse_secrets(check: RepositoryCheck) -> None:
    secrets = [os.environ.get(v) for v in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]
    secrets = [s.encode() for s in secrets if s and len(s) >= 8]
    if not secrets:
        return
    for rel in check.files:
        file = check.root / rel
        if file.suffix not in _TEXT_SUFFIXES or file.stat().st_size > 8 << 20:
            continue
        data = file.read_bytes()
        if any(s in data for s in secrets):
            raise StorageError(
                f"{rel} contains the value of $AWS_SECRET_ACCESS_KEY/$AWS_SESSION_TOKEN: credentials must stay "
                "in the server's environment, never in a repository. Remove them and export again"
            )


def s3_client(location: S3Location) -> Any:
    """A boto3 S3 client for ``location``; credentials from the environment only."""
    try:
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415
    except ImportError as exc:
        raise StorageError('pushing to s3:// needs boto3: pip install "funnel-scale[s3]"') from exc
    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise StorageError(
            f"no AWS credentials for {location.url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(and AWS_DEFAULT_REGION) in the environment"
        )
    region = session.region_name or os.environ.get("AWS_REGION") or "us-east-1"
    return session.client(
        "s3", endpoint_url=location.endpoint_url, region_name=region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def _existing_keys(client: Any, location: S3Location) -> list[str]:
    prefix = f"{location.prefix}/" if location.prefix else ""
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return keys


@dataclass
class PushResult:
    """What :func:`push_repository` uploaded."""

    location: S3Location
    check: RepositoryCheck
    uploaded: int
    deleted: int


def push_repository(
    path: str | os.PathLike[str],
    url: str,
    overwrite: bool = False,
    create_bucket: bool = False,
    client: Any = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> PushResult:
    """Upload the repository at ``path`` to ``url`` (``s3://[host:port/]bucket/path``).

    Checks it first (:func:`check_repository`, no credentials inside). Refuses a non-empty
    prefix unless ``overwrite`` (then the old objects under it are deleted, so no stale file
    survives); refuses a missing bucket unless ``create_bucket``. ``progress(done, total, key)``
    is called after each file.
    """
    location = parse_s3_url(url)
    if not location.prefix:
        raise StorageError(f"{url}: give a path inside the bucket (s3://.../{location.bucket}/PATH), not the bucket root")
    check = check_repository(path)
    _refuse_secrets(check)
    client = client or s3_client(location)
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        try:
            client.head_bucket(Bucket=location.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise
            if not create_bucket:
                raise StorageError(
                    f"bucket {location.bucket!r} does not exist at {location.endpoint_url or 'AWS'}; create it "
                    "or pass --create-bucket"
                ) from exc
            client.create_bucket(Bucket=location.bucket)
        existing = _existing_keys(client, location)
        if existing and not overwrite:
            raise StorageError(
                f"{url} already holds {len(existing)} object(s) (e.g. {existing[0]!r}); pass --overwrite to "
                "replace them (the old objects are deleted first)"
            )
        for start in range(0, len(existing), 1000):
            chunk = existing[start : start + 1000]
            client.delete_objects(Bucket=location.bucket, Delete={"Objects": [{"Key": k} for k in chunk]})
        total = len(check.files)
        for done, rel in enumerate(sorted(check.files), 1):
            key = location.key(rel.as_posix())
            client.upload_file(str(check.root / rel), location.bucket, key)
            if progress is not None:
                progress(done, total, key)
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"pushing {path} to {url} failed: {type(exc).__name__}: {exc}") from exc
    return PushResult(location, check, uploaded=len(check.files), deleted=len(existing))
