"""String (BYTES) columns: served through a numpy<2 model environment (EXECUTION_ENV_PATH).

The 2.51 Python-backend stub predates numpy 2 and cannot move BYTES tensors under it; a
model environment with numpy<2 (a plain virtualenv holding funnel) serves them correctly.
The test builds that environment with uv (numpy<2 + this checkout's core), exports a graph
with string request, list and output columns, and compares served with in-process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from funnel import ColumnSchema, ColumnSelector, Ensemble, Ragged, Schema, Table
from funnel.ops import FilterCandidates, UnrollFeatures
from funnel_triton import TritonServer

CORE = Path(__file__).resolve().parents[2]


def _uv_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    if Path("/opt/wheels").is_dir():
        env.setdefault("UV_FIND_LINKS", "/opt/wheels")
    if Path("/opt/pypi/simple").is_dir():
        env.setdefault("UV_EXTRA_INDEX_URL", "file:///opt/pypi/simple file:///opt/pypi-more/simple")
    return env


@pytest.fixture(scope="module")
def numpy1_env(tmp_path_factory) -> Path:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is installed by tools/venv.sh"
    env_dir = tmp_path_factory.mktemp("np1") / "env"
    env = {**_uv_env(), "VIRTUAL_ENV": str(env_dir)}
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(env_dir)], check=True, env=env, timeout=300)
    subprocess.run([uv, "pip", "install", "-q", "numpy<2", "msgspec", "pluggy", "click"], check=True, env=env, timeout=600)
    subprocess.run([uv, "pip", "install", "-q", "--no-deps", "-e", str(CORE)], check=True, env=env, timeout=300)
    return env_dir


REQUEST = Schema([
    ColumnSchema("user", str),
    ColumnSchema("candidates", str, dims=(None,)),
    ColumnSchema("seen", str, dims=(None,)),
])


def string_graph() -> Ensemble:
    filtered = ["candidates"] >> FilterCandidates(ColumnSelector("seen"), input_col="candidates")
    return Ensemble(filtered >> UnrollFeatures("candidates", ColumnSelector(["user"])), REQUEST)


def request() -> Table:
    return Table({
        "user": np.array(["ana", "bo ☀", "cy"], dtype=object),
        "candidates": Ragged.from_lists([["a", "b", "c"], ["d"], []], dtype=str),
        "seen": Ragged.from_lists([["b"], [], ["x"]], dtype=str),
    })


@pytest.mark.parametrize("mode", ["executor", "ensemble"])
def test_strings_served_through_a_numpy1_environment(numpy1_env, tmp_path, mode):
    ens = string_graph()
    repo = ens.export(tmp_path / "repo", mode=mode, execution_env=numpy1_env)
    assert "EXECUTION_ENV_PATH" in next(repo.glob("*/config.pbtxt")).read_text() or mode == "ensemble"
    with TritonServer(repo, timeout=180) as server:
        served = server.infer(request())
        local = ens.transform(request())
        assert served == local
        assert served["candidates"].to_lists() == [["a", "c"], ["d"], []]
        assert served["user"].to_lists() == [["ana", "ana"], ["bo ☀"], []]
