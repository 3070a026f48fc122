"""Offline scoring of the multi-stage graph on a Dask LocalCluster (2 worker processes), with
funnel-scale's DaskExecutor: a cross-plugin test.

Real Feast (sqlite online store), TensorFlow, FAISS and sampling, rebuilt on each worker from
the graph's JSON; results written as parquet and compared with ``Ensemble.transform()``; the
seeded sampler's per-partition reproducibility. The executor's own behaviour (errors, the CLI,
GraphSpec) is tested with core's demo graph in plugins/scale/tests/test_dask_scoring.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from funnel import Ensemble
from funnel_scale.dask import DaskExecutor, arrow_schema
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
