"""Repositories on S3-compatible storage without any backend plugin: `funnel repo check|push`
against a real moto_server on 127.0.0.1, the self-contained checks, credentials handling.
(Serving a pushed repository from s3:// on Triton, with a FAISS artifact, is tests/test_s3.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from funnel_testing import demo_ensemble

from funnel_scale.storage import StorageError, check_repository, parse_s3_url, push_repository


def test_parse_s3_url() -> None:
    loc = parse_s3_url("s3://127.0.0.1:9000/bucket/a/b/")
    assert (loc.endpoint_url, loc.bucket, loc.prefix) == ("http://127.0.0.1:9000", "bucket", "a/b")
    assert parse_s3_url("s3://https://minio.local:443/b/p").endpoint_url == "https://minio.local:443"
    aws = parse_s3_url("s3://my-bucket/models/v1")
    assert (aws.endpoint_url, aws.bucket, aws.key("x/config.pbtxt")) == (None, "my-bucket", "models/v1/x/config.pbtxt")
    for bad in ("/local/dir", "gs://b/p", "s3://"):
        with pytest.raises(StorageError, match="not an S3 repository URL"):
            parse_s3_url(bad)


def test_cli_check_and_push(funnel_cli, moto, aws_env, demo_repo: Path) -> None:
    import boto3  # noqa: PLC0415

    check = CliRunner().invoke(funnel_cli, ["repo", "check", str(demo_repo)])
    assert check.exit_code == 0 and "1 model(s) ['funnel']" in check.output and "self-contained" in check.output
    url = f"s3://{moto}/models/demo/v1"
    result = CliRunner().invoke(funnel_cli, ["repo", "push", str(demo_repo), url, "--create-bucket"])
    assert result.exit_code == 0, result.output
    assert f"to {url}" in result.output and f"tritonserver --model-repository={url}" in result.output
    s3 = boto3.client("s3", endpoint_url=f"http://{moto}", region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="models", Prefix="demo/v1/")["Contents"]}
    assert keys == {f"demo/v1/{p.relative_to(demo_repo).as_posix()}" for p in demo_repo.rglob("*") if p.is_file()}
    for key in keys:  # no credential reached the bucket
        assert aws_env["AWS_SECRET_ACCESS_KEY"].encode() not in s3.get_object(Bucket="models", Key=key)["Body"].read()
    again = CliRunner().invoke(funnel_cli, ["repo", "push", str(demo_repo), url])
    assert again.exit_code != 0 and "--overwrite" in again.output
    s3.put_object(Bucket="models", Key="demo/v1/stale/file.txt", Body=b"old")
    again = CliRunner().invoke(funnel_cli, ["repo", "push", str(demo_repo), url, "--overwrite"])
    assert again.exit_code == 0 and "replaced" in again.output, again.output
    keys_after = {o["Key"] for o in s3.list_objects_v2(Bucket="models", Prefix="demo/v1/")["Contents"]}
    assert keys_after == keys  # the stale object is gone


def test_missing_credentials_and_bucket(moto, monkeypatch, aws_env, demo_repo: Path, tmp_path: Path) -> None:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StorageError, match="no AWS credentials"):
        push_repository(demo_repo, f"s3://{moto}/nocreds/p")
    for k, v in aws_env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(StorageError, match="does not exist.*--create-bucket"):
        push_repository(demo_repo, f"s3://{moto}/absent-bucket/p")
    with pytest.raises(StorageError, match="not the bucket root"):
        push_repository(demo_repo, f"s3://{moto}/absent-bucket")


def test_secret_in_repository_is_refused(moto, aws_env, tmp_path: Path) -> None:
    repo = demo_ensemble().export(tmp_path / "repo")
    cfg = repo / "funnel" / "config.pbtxt"
    cfg.write_text(cfg.read_text() + f'\n# key {aws_env["AWS_SECRET_ACCESS_KEY"]}\n')
    with pytest.raises(StorageError, match="funnel/config.pbtxt contains the value of"):
        push_repository(repo, f"s3://{moto}/secret/p", create_bucket=True)


def test_self_contained_checks(tmp_path: Path) -> None:
    ens = demo_ensemble()
    repo = ens.export(tmp_path / "repo")
    check = check_repository(repo)
    assert check.models == ["funnel"] and check.external == []
    # an absolute path in an operator config that nothing overrides is refused, naming where
    graph_file = repo / "funnel" / "1" / "funnel-graph.json"
    doc = json.loads(graph_file.read_text())
    node = next(n for n in doc["graph"]["nodes"] if n["kind"] == "op")
    node["op"]["config"]["lookup_table"] = "/home/me/tables/items.parquet"
    graph_file.write_text(json.dumps(doc))
    with pytest.raises(StorageError, match=r"not self-contained:\n.*config 'lookup_table' = '/home/me/tables"):
        check_repository(repo)
    # a symlink leaving the model directory is refused
    repo2 = ens.export(tmp_path / "repo2")
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x")
    os.symlink(outside, repo2 / "funnel" / "1" / "extra.bin")
    with pytest.raises(StorageError, match="symlink to .*outside model directory 'funnel'"):
        check_repository(repo2)
    with pytest.raises(StorageError, match="no model directory"):
        check_repository(tmp_path)
    with pytest.raises(StorageError, match="is not a directory"):
        check_repository(tmp_path / "absent")
