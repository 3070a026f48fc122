"""Export files (no server): atomic, deterministic, no pickle, overwrite rules; the self-check."""

from __future__ import annotations

import json

import numpy as np
import pytest

from funnel.errors import ExportError
from funnel.files import MANIFEST_FILE
from funnel.triton.runtime import self_check


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("mode", ["executor", "ensemble"])
def test_export_is_deterministic_and_pickle_free(ensemble, tmp_path, mode):
    before = json.dumps(ensemble.to_dict(), sort_keys=True)
    a = _files(ensemble.export(tmp_path / "a", mode=mode))
    b = _files(ensemble.export(tmp_path / "b", mode=mode))
    assert a == b
    assert json.dumps(ensemble.to_dict(), sort_keys=True) == before  # graph not mutated
    for name, data in a.items():
        assert not name.endswith((".pkl", ".pickle", ".pt")), name
        assert not data.startswith(b"\x80"), f"{name} looks like a pickle"
    manifest = json.loads(a[MANIFEST_FILE])
    assert manifest["mode"] == mode and manifest["entry_model"] == "funnel"
    assert "funnel.UnrollFeatures" in manifest["operators"]
    # the demo graph uses core ops and the test operators (the funnel-testing plugin)
    assert {p["distribution"] for p in manifest["plugins"]} == {"funnel", "funnel-testing"}
    shims = [data.decode() for name, data in a.items() if name.endswith("model.py")]
    assert shims and all("from funnel.triton.runtime import" in s and len(s.splitlines()) < 5 for s in shims)


def test_ensemble_layout(ensemble, tmp_path):
    repo = ensemble.export(tmp_path / "r", mode="ensemble")
    names = sorted(p.name for p in repo.iterdir() if p.is_dir())
    want = [f"{b.index}_{type(b.node.op).__name__}" for b in ensemble.graph.op_nodes]
    assert names == sorted([*want, "funnel"])
    assert [n.split("_", 1)[1] for n in want] == ["FilterCandidates", "UnrollFeatures", "LinearScore", "TopByScore"]
    config = (repo / "funnel" / "config.pbtxt").read_text()
    assert 'platform: "ensemble"' in config
    assert '"out__candidates__values"' in config  # output renamed away from the request input
    assert (repo / want[1] / "1" / "funnel-op.json").is_file()


def test_overwrite_refused_then_allowed(ensemble, tmp_path):
    target = tmp_path / "repo"
    ensemble.export(target)
    (target / "marker").write_text("x")
    with pytest.raises(ExportError, match="overwrite=True"):
        ensemble.export(target)
    assert (target / "marker").exists()
    ensemble.export(target, overwrite=True, mode="ensemble")
    assert not (target / "marker").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_failed_export_leaves_nothing(ensemble, tmp_path):
    with pytest.raises(ExportError):
        ensemble.export(tmp_path / "x", mode="nope")
    assert list(tmp_path.iterdir()) == []


def test_config_declares_batching(ensemble, tmp_path):
    repo = ensemble.export(tmp_path / "r", max_batch_size=16, instance_count=2, instance_kind="gpu")
    config = (repo / "funnel" / "config.pbtxt").read_text()
    assert "max_batch_size: 16" in config and "dynamic_batching" in config and "KIND_GPU" in config
    assert "count: 2" in config and "allow_ragged_batch: true" in config
    repo = ensemble.export(tmp_path / "s", max_batch_size=0)
    config = (repo / "funnel" / "config.pbtxt").read_text()
    assert "dynamic_batching" not in config and "dims: [ 1, -1 ]" in config


def test_self_check_passes_on_a_faithful_path():
    self_check(lambda name, a: a, np.asarray)


@pytest.mark.parametrize(
    "broken",
    [
        lambda t: np.full_like(t, t.ravel()[0]),  # what as_numpy() did under numpy 2: [1,2,3] -> [1,1,1]
        lambda t: np.zeros((0,), t.dtype),  # what pb_utils.Tensor(name, ndarray) did: zero bytes
        lambda t: t.astype(np.float32),  # a silent dtype change
    ],
)
def test_self_check_catches_wrong_data(broken):
    with pytest.raises(RuntimeError, match="self-check"):
        self_check(lambda name, a: a, broken)
