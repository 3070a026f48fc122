"""Offline scoring with DaskExecutor / `funnel score` on a real distributed LocalCluster (2
worker processes), with core's demo graph: ragged list columns read from parquet, scored per
partition, written as parquet with the output schema, equal to ``Ensemble.transform()``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from funnel import Ensemble
from funnel.errors import FunnelError
from funnel.table import Ragged
from funnel_testing import demo_ensemble, demo_request

from funnel_scale.dask import DaskExecutor, GraphSpec, PartitionError, arrow_schema

ROWS = 48


@pytest.fixture(scope="module")
def client():
    import distributed  # noqa: PLC0415

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  host="127.0.0.1") as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_ensemble().save(tmp_path_factory.mktemp("graph") / "saved")


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    t = demo_request(rows, seed)
    return pd.DataFrame({
        "user_id": t["user_id"], "user_age": t["user_age"],
        "candidates": [list(r) for r in t["candidates"].to_lists()], "seen": [list(r) for r in t["seen"].to_lists()],
    })


@pytest.fixture(scope="module")
def requests(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """The demo requests as 3 parquet files (list columns as parquet lists, some lists empty)."""
    frame = _frame(ROWS)
    root = tmp_path_factory.mktemp("requests")
    for i, chunk in enumerate(np.array_split(np.arange(ROWS), 3)):
        frame.iloc[chunk].to_parquet(root / f"requests-{i}.parquet", index=False)
    return root, frame


def _read(out: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in sorted(out.glob("part.*.parquet"))], ignore_index=True)


def _lists(column: pd.Series) -> list[list]:
    return [list(r) for r in column]


def test_score_parquet_equals_transform(client, saved: Path, requests, tmp_path: Path) -> None:
    source, frame = requests
    ex = DaskExecutor(saved, client=client, batch_size=7)
    result = ex.score(source, tmp_path / "scores", progress=False)
    assert (result.partitions, result.rows) == (3, ROWS) and result.rows_per_second > 0
    assert [f.name for f in result.files] == ["part.00000.parquet", "part.00001.parquet", "part.00002.parquet"]
    assert pq.read_schema(result.files[0]).equals(arrow_schema(ex.output_schema))
    assert pq.read_schema(result.files[0]).field("candidates").type == pa.list_(pa.int64())

    got = _read(result.output)
    want = Ensemble.load(saved).transform(demo_request(ROWS))  # the same requests as one Table
    assert list(got.columns) == want.column_names
    for col in want.column_names:
        value = want[col]
        if isinstance(value, Ragged):
            assert _lists(got[col]) == value.to_lists(), col
        else:
            np.testing.assert_allclose(np.stack(got[col].to_numpy()), np.asarray(value), rtol=1e-6, err_msg=col)

    lazy = ex.transform(frame, npartitions=4).compute()  # a pandas source, 4 partitions, lazily
    assert _lists(lazy["candidates"]) == want["candidates"].to_lists()


def test_in_memory_ensemble_without_artifacts(client, requests, tmp_path: Path) -> None:
    """An in-memory Ensemble is saved and shipped; this one has no artifact files at all."""
    _, frame = requests
    with DaskExecutor(demo_ensemble(), client=client) as ex:
        assert ex.spec.archive is None and ex.spec.artifacts_dir is None  # nothing to ship, no path to read
        result = ex.score(frame, tmp_path / "one", npartitions=1, progress=False)
    got = _read(result.output)
    want = demo_ensemble().transform(demo_request(ROWS))
    np.testing.assert_array_equal(np.stack(got["top_ids"].to_numpy()), np.asarray(want["top_ids"]))


def test_failure_names_the_partition(client, saved: Path, tmp_path: Path) -> None:
    bad = _frame(4)
    bad["user_id"] = bad["user_id"].astype(np.float64)
    bad.loc[3, "user_id"] = 2.5  # not an integer id: refused by the request check, not rounded
    ex = DaskExecutor(saved, client=client, batch_size=2)
    with pytest.raises(PartitionError, match=r"partition 1, rows 0-1 of 2: .*user_id"):
        ex.score(bad, tmp_path / "bad", npartitions=2, progress=False)
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad.tmp-*"))
    with pytest.raises(FunnelError, match="lacks request column"):
        ex.score(pd.DataFrame({"uid": [1]}), tmp_path / "x", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(FunnelError, match="not empty"):
        ex.score(_frame(2), tmp_path / "full", progress=False)
    with pytest.raises(FunnelError, match="batch_size must be a positive integer"):
        DaskExecutor(saved, client=client, batch_size=0)


def test_cli_score_on_a_scheduler_address(funnel_cli, client, saved: Path, requests, tmp_path: Path) -> None:
    """`funnel score GRAPH SOURCE OUTPUT --scheduler ADDR` on the running cluster."""
    source, _ = requests
    out = tmp_path / "cli"
    result = CliRunner().invoke(funnel_cli, ["score", str(saved), str(source), str(out), "--scheduler",
                                             client.scheduler.address, "--batch-size", "16", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"scored {ROWS} rows in 3 partition(s)" in result.output
    assert len(_read(out)) == ROWS
    again = CliRunner().invoke(funnel_cli, ["score", str(saved), str(source), str(out), "--scheduler",
                                            client.scheduler.address, "--no-progress"])
    assert again.exit_code != 0 and "--overwrite" in again.output
    bad = CliRunner().invoke(funnel_cli, ["score", str(saved), str(source), str(out), "--scheduler",
                                          client.scheduler.address, "--env", "NOVALUE"])
    assert bad.exit_code != 0 and "NAME=VALUE" in bad.output


def test_graph_spec_from_an_export(tmp_path: Path) -> None:
    """An export repository's model version directory is found; two graphs are ambiguous."""
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
