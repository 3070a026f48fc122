"""Offline scoring of the multi-stage graph on a Dask LocalCluster (2 worker processes).

Real Feast (sqlite online store), TensorFlow, FAISS and sampling, rebuilt on each worker from
the graph's JSON; results written as parquet and compared with ``Ensemble.transform()``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from funnel import Ensemble
from funnel.dask import DaskExecutor, PartitionError, arrow_schema
from funnel.table import Ragged, Table, to_numpy

from examples.multistage.pipeline import REQUEST_SCHEMA, build_stages
from examples.multistage.prepare import Artifacts, prepare

NUM_USERS, NUM_ITEMS = 120, 300
SEED = 11


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    # shared with tests/test_scaling_bench.py (same sizes): prepared once per test session
    work = tmp_path_factory.getbasetemp() / f"multistage-{NUM_USERS}x{NUM_ITEMS}-e1"
    return prepare(work, num_users=NUM_USERS, num_items=NUM_ITEMS, epochs=1, log=lambda m: None)


def _ensemble(art: Artifacts) -> Ensemble:
    stages = build_stages(art, seed=SEED, temperature=0.5)
    return Ensemble(stages.ordering + stages.ranking + stages.filtered, REQUEST_SCHEMA)


@pytest.fixture(scope="module")
def saved(artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _ensemble(artifacts).save(tmp_path_factory.mktemp("graph") / "saved")


@pytest.fixture(scope="module")
def users(artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A parquet dataset of user ids in 4 files (some ids appear twice)."""
    ids = np.concatenate([np.arange(1, NUM_USERS + 1), np.arange(1, 21)]).astype(np.int64)
    root = tmp_path_factory.mktemp("users")
    for i, chunk in enumerate(np.array_split(ids, 4)):
        pd.DataFrame({"user_id": chunk, "extra": chunk * 2}).to_parquet(root / f"users-{i}.parquet", index=False)
    return root, ids


@pytest.fixture(scope="module")
def client():
    import distributed  # noqa: PLC0415 - in requirements/dev.txt: CI installs it, the test never skips
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  host="127.0.0.1") as cluster, distributed.Client(cluster) as c:
        yield c


def _read(out: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in sorted(out.glob("part.*.parquet"))], ignore_index=True)


def test_score_parquet_equals_transform(client, saved: Path, users, tmp_path: Path) -> None:
    source, ids = users
    ex = DaskExecutor(saved, client=client, batch_size=16)
    result = ex.score(source, tmp_path / "scores", progress=False)
    assert result.partitions == 4 and result.rows == ids.size
    got = _read(tmp_path / "scores")
    # the output schema made it into the parquet files: list columns are parquet lists
    file_schema = pq.read_schema(result.files[0])
    assert file_schema.equals(arrow_schema(ex.output_schema))
    assert file_schema.field("ordered_ids").type == pa.list_(pa.int64())

    whole = Ensemble.load(saved).transform(Table({"user_id": ids}))  # one call over the whole frame
    # deterministic stages (Feast, query tower, FAISS, filter, ranker) equal the whole-frame run
    cand = whole["candidate_ids"]
    assert [list(r) for r in got["candidate_ids"]] == cand.to_lists()
    rel = whole["relevance"]
    assert isinstance(rel, Ragged)
    np.testing.assert_allclose(np.concatenate([np.ravel(np.stack(r)) if len(r) else [] for r in got["relevance"]]),
                               to_numpy(rel.values).ravel(), rtol=1e-5)
    # the seeded sampler: each partition equals a freshly loaded graph on that partition
    # (whichever worker ran it); with one partition that is the whole-frame transform()
    expected = []
    for f in sorted(source.glob("*.parquet")):
        part = pd.read_parquet(f)
        fresh = Ensemble.load(saved)
        out = fresh.transform(Table({"user_id": part.user_id.to_numpy()}))
        expected.append(to_numpy(out["ordered_ids"]))
    np.testing.assert_array_equal(np.stack(got["ordered_ids"].to_numpy()), np.concatenate(expected))
    np.testing.assert_array_equal(np.stack(got["ordered_ids"].to_numpy())[: len(expected[0])], expected[0])
    # the first partition is also what a whole-frame run gives for its rows (same stream start)
    np.testing.assert_array_equal(expected[0], to_numpy(whole["ordered_ids"])[: len(expected[0])])

    # scoring again (other worker assignment, graph cached on the workers) gives the same bytes
    again = ex.score(source, tmp_path / "scores", overwrite=True, progress=False)
    np.testing.assert_array_equal(np.stack(_read(again.output)["ordered_ids"].to_numpy()),
                                  np.stack(got["ordered_ids"].to_numpy()))


def test_single_partition_equals_whole_frame_transform(client, artifacts: Artifacts, users, tmp_path: Path) -> None:
    """An in-memory Ensemble shipped to the workers (artifacts as a tar), a pandas source in one
    partition: every column, the sampled ordering included, equals transform() on the frame."""
    _, ids = users
    ens = _ensemble(artifacts)
    frame = pd.DataFrame({"user_id": ids})
    with DaskExecutor(ens, client=client, batch_size=32) as ex:
        assert ex.spec.archive is not None and ex.spec.artifacts_dir is None
        result = ex.score(frame, tmp_path / "one", npartitions=1, progress=False)
        lazy = ex.transform(frame, npartitions=3).compute()
    got = _read(result.output)
    want = _ensemble(artifacts).transform(frame)
    for col in ("ordered_ids", "ordered_scores"):
        np.testing.assert_allclose(np.stack(got[col].to_numpy()), np.stack(want[col].to_numpy()), rtol=1e-6)
    assert [list(r) for r in lazy["candidate_ids"]] == [list(r) for r in want["candidate_ids"]]


def test_failure_names_the_partition(client, saved: Path, tmp_path: Path) -> None:
    bad = pd.DataFrame({"user_id": np.array([1, 2, 3, 4], dtype=np.float64)})
    bad.loc[3, "user_id"] = 2.5  # not an integer id: refused by the request check, not rounded
    ex = DaskExecutor(saved, client=client, batch_size=2)
    with pytest.raises(PartitionError, match=r"partition 1, rows 0-1 of 2: .*user_id"):
        ex.score(bad, tmp_path / "bad", npartitions=2, progress=False)
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad.tmp-*"))
    with pytest.raises(Exception, match="lacks request column"):
        ex.score(pd.DataFrame({"uid": [1]}), tmp_path / "x", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(Exception, match="not empty"):
        ex.score(pd.DataFrame({"user_id": [1]}), tmp_path / "full", progress=False)


def test_cli_score_on_a_scheduler_address(client, saved: Path, users, tmp_path: Path) -> None:
    """`funnel score GRAPH SOURCE OUTPUT --scheduler ADDR` on the running cluster."""
    from click.testing import CliRunner  # noqa: PLC0415

    from funnel.cli import cli  # noqa: PLC0415

    source, ids = users
    out = tmp_path / "cli"
    result = CliRunner().invoke(cli, ["score", str(saved), str(source), str(out), "--scheduler",
                                      client.scheduler.address, "--batch-size", "64", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"scored {ids.size} rows in 4 partition(s)" in result.output
    assert len(_read(out)) == ids.size
    bad = CliRunner().invoke(cli, ["score", str(saved), str(source), str(out), "--scheduler",
                                   client.scheduler.address, "--env", "NOVALUE"])
    assert bad.exit_code != 0 and "NAME=VALUE" in bad.output


def test_graph_spec_from_an_export(tmp_path: Path) -> None:
    """An export repository's model version directory is found; two graphs are ambiguous."""
    from funnel.dask import GraphSpec  # noqa: PLC0415
    from funnel.errors import FunnelError  # noqa: PLC0415
    from funnel_testing import demo_ensemble  # noqa: PLC0415

    ens = demo_ensemble()
    repo = ens.export(tmp_path / "repo")
    spec = GraphSpec.from_directory(repo)
    assert spec.graph_json == (repo / "funnel" / "1" / "funnel-graph.json").read_bytes()
    assert spec.artifacts_dir == str((repo / "funnel" / "1" / "artifacts").resolve()) and spec.archive is None
    assert GraphSpec.from_directory(repo, env={"A": "1"}).digest != spec.digest
    ens.export(tmp_path / "two", name="a")
    ens.export(tmp_path / "two" / "b_repo", name="b")
    (tmp_path / "two" / "b_repo" / "b").rename(tmp_path / "two" / "b")
    with pytest.raises(FunnelError, match="several funnel graphs"):
        GraphSpec.from_directory(tmp_path / "two")
    with pytest.raises(FunnelError, match="holds no funnel-graph.json"):
        GraphSpec.from_directory(tmp_path / "empty-dir-that-is-not-there")
