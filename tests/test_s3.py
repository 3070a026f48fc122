"""Model repositories on S3-compatible storage (funnel-scale) with plugin operators: push an export
holding a FAISS index with `funnel repo push`, serve it from s3:// on the embedded Triton (a
real moto server on 127.0.0.1 started here); a Feast repository path counts as overridable.
The URL, credential and self-contained checks are plugins/scale/tests/test_storage.py."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from funnel import ColumnSchema, Ensemble, Schema, Table
from funnel.table import to_numpy

from funnel_scale.storage import check_repository
from funnel_testing import loopback_server

pytestmark = pytest.mark.triton

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "funneltestkey",
    "AWS_SECRET_ACCESS_KEY": "funnel-test-secret-value",
    "AWS_DEFAULT_REGION": "us-east-1",
}
DIM = 8


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """A real S3-compatible server (moto's server mode) on a free loopback port."""
    exe = Path(sys.executable).parent / "moto_server"
    assert exe.is_file(), "moto_server missing: pip install 'moto[server]' (requirements/dev.txt)"
    with loopback_server(lambda port: [str(exe), "-H", "127.0.0.1", "-p", str(port)]) as address:
        yield address


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(k, raising=False)
    return CREDENTIALS


@pytest.fixture(scope="module")
def faiss_graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ensemble, Table]:
    """A FAISS retrieval + sampling graph: its index is an artifact that must travel with the model."""
    from funnel_faiss import QueryFaiss, build_index  # noqa: PLC0415
    from funnel_sampling import TopK  # noqa: PLC0415

    rng = np.random.default_rng(0)
    items = rng.standard_normal((300, DIM)).astype(np.float32)
    index = build_index(items, np.arange(1000, 1300), path=tmp_path_factory.mktemp("idx") / "items.faiss")
    retrieval = ["query"] >> QueryFaiss(index, topk=20, include_distances=True)
    ordered = retrieval["candidate_ids"] >> TopK(relevance_col=retrieval["candidate_distances"], topk=5)
    ens = Ensemble(ordered + retrieval["candidate_ids"], Schema([ColumnSchema("query", "float32", dims=(DIM,))]))
    request = Table({"query": rng.standard_normal((3, DIM)).astype(np.float32)})
    return ens, request


def test_push_and_serve_from_s3(moto, aws_env, faiss_graph, tmp_path: Path) -> None:
    """`funnel repo push` uploads an export; Triton loads it from s3:// and answers like transform()."""
    import boto3  # noqa: PLC0415

    from funnel.cli import cli  # noqa: PLC0415
    from funnel_triton import TritonServer  # noqa: PLC0415

    from funnel_scale import plugin  # noqa: PLC0415

    plugin.register_commands(cli=cli)  # what `funnel` does at start with funnel-scale installed

    ens, request = faiss_graph
    repo = ens.export(tmp_path / "repo")
    url = f"s3://{moto}/models/recsys/v1"
    result = CliRunner().invoke(cli, ["repo", "push", str(repo), url, "--create-bucket"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "uploaded" in result.output
    s3 = boto3.client("s3", endpoint_url=f"http://{moto}", region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="models", Prefix="recsys/v1/")["Contents"]}
    local = {f"recsys/v1/{p.relative_to(repo).as_posix()}" for p in repo.rglob("*") if p.is_file()}
    assert keys == local and any(k.endswith("items.faiss") or "QueryFaiss" in k for k in keys)
    # no credential reached the bucket
    for key in keys:
        body = s3.get_object(Bucket="models", Key=key)["Body"].read()
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"].encode() not in body

    # a second push onto the same prefix is refused without --overwrite, accepted with it
    again = CliRunner().invoke(cli, ["repo", "push", str(repo), url])
    assert again.exit_code != 0 and "--overwrite" in again.output
    again = CliRunner().invoke(cli, ["repo", "push", str(repo), url, "--overwrite"])
    assert again.exit_code == 0, again.output

    with TritonServer(url, timeout=120, env=dict(CREDENTIALS), log_verbose=1) as server:
        got = server.infer(request)
        log = server.log
    want = ens.transform(request)
    assert got.column_names == want.column_names
    np.testing.assert_array_equal(to_numpy(got["ordered_ids"]), to_numpy(want["ordered_ids"]))
    assert got["candidate_ids"] == want["candidate_ids"]
    # Triton read the model directory from S3 (every file: graph JSON, model.py, the FAISS index
    # artifact), copied it to a local temporary directory and ran the Python stub from there
    for name in ("funnel/config.pbtxt", "funnel/1/model.py", "funnel/1/funnel-graph.json", "1_QueryFaiss/index.faiss"):
        assert re.search(rf"for path\s+{re.escape(url)}/\S*{re.escape(name)}", log), name
    stub = re.search(r"triton_python_backend_stub (\S+)/1/model\.py", log)
    assert stub and not stub.group(1).startswith(str(repo)) and not stub.group(1).startswith("s3:")


def test_feast_repo_path_is_overridable(tmp_path: Path) -> None:
    """QueryFeast's repository path is absolute but the serving environment overrides it: accepted, reported."""
    from funnel_feast import QueryFeast, build_feature_repo  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    users = pd.DataFrame({"user_id": np.arange(1, 4, dtype=np.int64), "age": np.arange(3, dtype=np.int64)})
    feature_repo = build_feature_repo(tmp_path / "feast", {"user_features": ("user_id", users)}, project="s3test")
    ens = Ensemble(["user_id"] >> QueryFeast.from_feature_view(feature_repo, "user_features", column="user_id"),
                   Schema([ColumnSchema("user_id", "int64")]))
    check = check_repository(ens.export(tmp_path / "repo"))
    (ext,) = check.external
    assert ext.key == "repo_path" and ext.value == str(Path(feature_repo).resolve())
    assert "FUNNEL_FEAST_REPO_PATH" in ext.describe() and check.blocking == []
