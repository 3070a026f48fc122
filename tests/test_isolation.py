"""Each package stands alone: core installs with numpy, pluggy, msgspec and click only; each
plugin installs with core and its backend only, shows up in `funnel plugins`, and its own
tests pass in that environment (fresh virtualenvs built with uv)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.isolation

# package dir → (extras to install, entry-point name, distribution)
PLUGINS = {
    "plugins/sampling_op": ("", "sampling", "funnel-sampling"),
    "plugins/faiss_op": ("", "faiss", "funnel-faiss"),
    "plugins/feast_op": ("[redis]", "feast", "funnel-feast"),
    "plugins/tf_op": ("[cpu]", "tf", "funnel-tensorflow"),
    "plugins/torch_t4r_op": ("[session]", "torch", "funnel-torch"),
    "plugins/workflow_op": ("[dask]", "workflow", "funnel-workflow"),
    "plugins/scale": ("[s3,kserve,test]", "scale", "funnel-scale"),
    "plugins/triton": ("[pandas]", "triton", "funnel-triton"),
}
#: plugins that add commands only (register_commands), no operators
COMMANDS_ONLY = {"plugins/scale", "plugins/triton"}
#: what `funnel[triton]` installs: the launcher and client every plugin's served tests use
SERVING = "funnel-triton"
CORE_ALLOWED = {"funnel", "numpy", "pluggy", "msgspec", "click"}
# test tooling, and funnel-testing (the test operators some plugin suites serve)
TEST_TOOLS = ["pytest==8.4.2", "pytest-timeout", "hypothesis", "./core/testing"]


def uv_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "FUNNEL_LOAD_PLUGINS")}
    env["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    if Path("/opt/wheels").is_dir():
        env.setdefault("UV_FIND_LINKS", "/opt/wheels")
    try:
        extra = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.extra-index-url"],
            capture_output=True, text=True, timeout=30,
        ).stdout.strip()
    except Exception:  # noqa: BLE001 - pip may be absent from a uv-made venv
        extra = ""
    if not extra and Path("/opt/pypi/simple").is_dir():
        extra = "file:///opt/pypi/simple" + (" file:///opt/pypi-more/simple" if Path("/opt/pypi-more/simple").is_dir() else "")
    if extra:
        env.setdefault("UV_EXTRA_INDEX_URL", extra)
    return env


def uv() -> str:
    exe = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert exe, "uv is installed by tools/venv.sh"
    return exe


def make_venv(path: Path, *requirements: str, no_deps: tuple[str, ...] = ()) -> Path:
    env = {**uv_env(), "VIRTUAL_ENV": str(path)}
    subprocess.run([uv(), "venv", "-q", "-p", sys.executable, str(path)], check=True, env=env, timeout=300)
    subprocess.run([uv(), "pip", "install", "-q", *requirements], check=True, env=env, timeout=900, cwd=ROOT)
    if no_deps:
        subprocess.run([uv(), "pip", "install", "-q", "--no-deps", *no_deps], check=True, env=env, timeout=900)
    return path


def installed(venv: Path) -> set[str]:
    out = subprocess.run(
        [uv(), "pip", "list", "--format", "json"],
        check=True, capture_output=True, text=True, env={**uv_env(), "VIRTUAL_ENV": str(venv)}, timeout=120,
    ).stdout
    return {d["name"].lower().replace("_", "-") for d in json.loads(out)}


def plugins_json(venv: Path) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("FUNNEL_LOAD_PLUGINS", "PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(venv / "bin" / "funnel"), "plugins", "--json"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_core_installs_with_its_three_dependencies_and_click(tmp_path):
    venv = make_venv(tmp_path / "core", "./core")
    assert installed(venv) <= CORE_ALLOWED, f"core pulled in {installed(venv) - CORE_ALLOWED}"
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", "import funnel, sys; "
                           "print(sorted(m for m in ('pandas', 'tensorflow', 'feast', 'faiss', 'torch') if m in sys.modules))"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr
    infos = plugins_json(venv)
    assert [i["name"] for i in infos] == ["funnel"]


@pytest.mark.parametrize("package", sorted(PLUGINS))
def test_plugin_alone_installs_lists_and_passes_its_tests(tmp_path, package):
    extras, ep_name, dist = PLUGINS[package]
    venv = make_venv(
        tmp_path / "venv",
        "./core[triton]",
        *(["./plugins/triton"] if package != "plugins/triton" else []),
        f"./{package}{extras}",
        *TEST_TOOLS,
        no_deps=("nvidia-pytriton==0.7.0",),
    )
    names = installed(venv)
    assert dist in names
    siblings = names & ({d for _, _, d in PLUGINS.values()} - {dist, SERVING})
    assert not siblings, f"{package} pulled in sibling plugins {siblings}"
    infos = {i["name"]: i for i in plugins_json(venv)}
    assert ep_name in infos, f"funnel plugins does not list {ep_name}: {infos}"
    if package in COMMANDS_ONLY:
        assert infos[ep_name]["operators"] == [] and "register_commands" in infos[ep_name]["hooks"], infos[ep_name]
    else:
        assert infos[ep_name]["operators"], infos[ep_name]
    assert not infos[ep_name].get("error")
    env = {k: v for k, v in os.environ.items() if k not in ("FUNNEL_LOAD_PLUGINS", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", f"{package}/tests", "-q", "-x", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
