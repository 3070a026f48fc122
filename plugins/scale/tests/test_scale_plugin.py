"""The plugin itself: its entry point adds `funnel score`, `funnel repo check|push` and
`funnel deploy kserve` (names, options and help as they were in core), loading it imports no
backend, and core never imports funnel_scale."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click

from funnel_scale import plugin

ROOT = Path(__file__).resolve().parents[3]

#: every command's options, as core's cli_scale.py had them before the move
OPTIONS = {
    ("score",): ["--scheduler", "--workers", "--batch-size", "--npartitions", "--ship-artifacts", "--env",
                 "--overwrite", "--no-progress"],
    ("repo", "check"): [],
    ("repo", "push"): ["--overwrite", "--create-bucket"],
    ("deploy", "kserve"): ["--storage-uri", "--image", "--name", "--namespace", "--replicas", "--max-replicas",
                           "--cpu", "--memory", "--gpus", "--env", "--credentials-secret", "--service-account",
                           "--output"],
}
ARGUMENTS = {("score",): ["graph", "source", "output"], ("repo", "check"): ["directory"],
             ("repo", "push"): ["directory", "url"], ("deploy", "kserve"): ["repository"]}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FUNNEL_LOAD_PLUGINS", "PYTHONPATH")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def test_register_commands_adds_the_scale_commands() -> None:
    group = click.Group("funnel")
    plugin.register_commands(cli=group)
    assert sorted(group.commands) == ["deploy", "repo", "score"]
    for path, options in OPTIONS.items():
        cmd = group
        for name in path:
            cmd = cmd.commands[name]  # type: ignore[attr-defined]
        opts = [max(p.opts, key=len) for p in cmd.params if isinstance(p, click.Option)]
        args = [p.name for p in cmd.params if isinstance(p, click.Argument)]
        assert opts == options and args == ARGUMENTS[path], (path, opts, args)
    assert sorted(group.commands["repo"].commands) == ["check", "push"]  # type: ignore[attr-defined]
    assert sorted(group.commands["deploy"].commands) == ["kserve"]  # type: ignore[attr-defined]
    assert group.commands["score"].help.startswith("Score a parquet dataset offline with a funnel graph on Dask")


def test_installed_entry_point_lists_the_commands() -> None:
    """Installed (pip install funnel-scale), the `funnel` console script has the commands."""
    eps = [ep for ep in importlib.metadata.entry_points(group="funnel.plugins") if ep.name == "scale"]
    assert eps, ("funnel-scale is not installed in this environment, so `funnel` has no scale commands: "
                 "pip install -e plugins/scale (the dev venv: rebuild it with tools/venv.sh)")
    assert eps[0].value == "funnel_scale.plugin" and eps[0].dist is not None and eps[0].dist.name == "funnel-scale"
    funnel = Path(sys.executable).parent / "funnel"
    out = subprocess.run([str(funnel), "--help"], capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    listed = set(re.findall(r"^  (\S+)", out.stdout.split("Commands:", 1)[1], flags=re.M))
    assert {"score", "repo", "deploy", "plugins", "serve"} <= listed, out.stdout
    out = subprocess.run([str(funnel), "plugins", "--json"], capture_output=True, text=True, env=_env(), timeout=120)
    infos = {i["name"]: i for i in json.loads(out.stdout)}
    assert infos["scale"]["distribution"] == "funnel-scale" and infos["scale"]["operators"] == []
    assert infos["scale"]["hooks"] == ["register_commands"] and not infos["scale"].get("error")
    out = subprocess.run([str(funnel), "deploy", "kserve", "--help"], capture_output=True, text=True, env=_env(),
                         timeout=120)
    assert out.returncode == 0 and "--storage-uri" in out.stdout, out.stdout + out.stderr


def test_leaving_the_plugin_out_removes_its_commands() -> None:
    """FUNNEL_LOAD_PLUGINS without `scale`: core's commands only; `funnel score` says which
    plugin provides it."""
    funnel = Path(sys.executable).parent / "funnel"
    env = {**_env(), "FUNNEL_LOAD_PLUGINS": ""}
    out = subprocess.run([str(funnel), "score", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "pip install funnel-scale" in out.stderr, out.stdout + out.stderr
    assert "Score a parquet dataset" not in out.stdout


def test_loading_the_plugin_imports_no_backend() -> None:
    """What every `funnel` start and every served model pays for this plugin: no dask, boto3, kserve."""
    code = ("import sys; from funnel.cli import cli; from funnel_scale import plugin; plugin.register_commands(cli=cli); "
            "print(sorted(m for m in ('dask', 'distributed', 'boto3', 'kserve', 'pandas', 'pyarrow', 'tqdm') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(),
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_lazy_exports() -> None:
    import funnel_scale  # noqa: PLC0415
    from funnel_scale.dask import DaskExecutor  # noqa: PLC0415
    from funnel_scale.deploy import kserve_manifest  # noqa: PLC0415
    from funnel_scale.storage import push_repository  # noqa: PLC0415

    assert funnel_scale.DaskExecutor is DaskExecutor and funnel_scale.kserve_manifest is kserve_manifest
    assert funnel_scale.push_repository is push_repository
    try:
        funnel_scale.Nothing  # noqa: B018
    except AttributeError as exc:
        assert "DaskExecutor" in str(exc)
    else:
        raise AssertionError("funnel_scale.Nothing should not exist")


def test_core_never_imports_funnel_scale() -> None:
    core = ROOT / "core" / "src" / "funnel"
    assert core.is_dir(), core
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in sorted(core.rglob("*.py"))
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if "funnel_scale" in line]
    assert not hits, f"core imports the funnel-scale plugin: {hits}"
    for gone in ("dask.py", "storage.py", "deploy.py", "cli_scale.py"):
        assert not (core / gone).exists(), f"core/src/funnel/{gone} moved to funnel_scale"
