"""``funnel faiss build`` / ``funnel faiss info``, run as the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np

FUNNEL = Path(sys.executable).parent / "funnel"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FUNNEL), *args], capture_output=True, text=True, timeout=120)


def test_help_lists_the_faiss_group():
    top = run("--help")
    assert top.returncode == 0 and "faiss" in top.stdout
    group = run("faiss", "--help")
    assert group.returncode == 0
    assert "build" in group.stdout and "info" in group.stdout
    build = run("faiss", "build", "--help")
    assert "--kind [flat|ivf|hnsw]" in build.stdout and "--metric [ip|l2]" in build.stdout


def test_plugins_json_lists_register_commands():
    out = run("plugins", "--json")
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert "register_commands" in plugins["faiss"]["hooks"]
    assert "register_operators" in plugins["faiss"]["hooks"]


def test_build_then_info(data, tmp_path):
    items, ids = data["items"][:2000], data["ids"][:2000]
    np.save(tmp_path / "emb.npy", items)
    np.save(tmp_path / "ids.npy", ids)
    target = tmp_path / "sub" / "index.faiss"
    out = run("faiss", "build", str(tmp_path / "emb.npy"), "-o", str(target),
              "--ids", str(tmp_path / "ids.npy"), "--kind", "hnsw", "--metric", "l2")
    assert out.returncode == 0, out.stderr
    assert "n=2000" in out.stdout and "d=32" in out.stdout and "hnsw" in out.stdout and str(target) in out.stdout

    index = faiss.read_index(str(target))  # a plain FAISS file that returns the given ids
    assert index.ntotal == 2000 and index.d == 32 and index.metric_type == faiss.METRIC_L2
    _, found = index.search(items[:5], 1)
    assert found[:, 0].tolist() == ids[:5].tolist()

    info = run("faiss", "info", str(target))
    assert info.returncode == 0, info.stderr
    assert "ntotal:     2000" in info.stdout
    assert "dimension:  32" in info.stdout
    assert "IndexIDMap2 > IndexHNSWFlat" in info.stdout
    assert "ids mapped: yes" in info.stdout
    assert "metric:     l2" in info.stdout


def test_info_of_an_index_without_ids(tmp_path):
    plain = faiss.IndexFlatL2(4)
    plain.add(np.eye(4, dtype=np.float32))
    faiss.write_index(plain, str(tmp_path / "plain.faiss"))
    info = run("faiss", "info", str(tmp_path / "plain.faiss"))
    assert info.returncode == 0, info.stderr
    assert "IndexFlatL2" in info.stdout and "ntotal:     4" in info.stdout
    assert "ids mapped: no" in info.stdout


def assert_clean_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out.stderr
    for needle in needles:
        assert needle in errors[0], out.stderr


def test_bad_inputs_are_one_error_line(tmp_path):
    assert_clean_error(run("faiss", "info", str(tmp_path / "missing.faiss")), "missing.faiss", "does not exist")
    (tmp_path / "junk.faiss").write_text("not an index")
    assert_clean_error(run("faiss", "info", str(tmp_path / "junk.faiss")), "junk.faiss")
    assert_clean_error(run("faiss", "build", str(tmp_path / "none.npy"), "-o", str(tmp_path / "x.faiss")),
                       "none.npy")
    np.save(tmp_path / "flat.npy", np.zeros(5, dtype=np.float32))  # 1-D: not (N, d)
    assert_clean_error(run("faiss", "build", str(tmp_path / "flat.npy"), "-o", str(tmp_path / "x.faiss")),
                       "(N, d)")
