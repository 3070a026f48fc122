"""The plugin itself: its entry point adds `funnel serve` and `funnel infer` (names, options and
help as they were in core), loading it imports no tritonclient, and core never imports it."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click

from funnel_triton import plugin

ROOT = Path(__file__).resolve().parents[3]
FUNNEL = str(Path(sys.executable).parent / "funnel")

#: every command's options, as core's cli.py had them before the move
OPTIONS = {
    "serve": ["--http-port", "--grpc-port", "--timeout", "--tritonserver", "--host", "--admin-key",
              "--open-admin-api", "--pass-env", "--no-watchdog"],
    "infer": ["--url", "--protocol", "--model", "--json"],
}
ARGUMENTS = {"serve": ["repository"], "infer": ["rows"]}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FUNNEL_LOAD_PLUGINS", "PYTHONPATH")}
    return {**env, **extra}


def test_register_commands_adds_serve_and_infer() -> None:
    group = click.Group("funnel")
    plugin.register_commands(cli=group)
    assert sorted(group.commands) == ["infer", "serve"]
    for name, options in OPTIONS.items():
        cmd = group.commands[name]
        opts = [max(p.opts, key=len) for p in cmd.params if isinstance(p, click.Option)]
        args = [p.name for p in cmd.params if isinstance(p, click.Argument)]
        assert opts == options and args == ARGUMENTS[name], (name, opts, args)
    assert group.commands["serve"].help.startswith("Serve an exported model repository with Triton until Ctrl-C")


def test_installed_entry_point_lists_the_plugin() -> None:
    eps = [ep for ep in importlib.metadata.entry_points(group="funnel.plugins") if ep.name == "triton"]
    assert eps, "funnel-triton is not installed here: pip install -e plugins/triton (dev venv: tools/venv.sh)"
    assert eps[0].value == "funnel_triton.plugin" and eps[0].dist is not None and eps[0].dist.name == "funnel-triton"
    out = subprocess.run([FUNNEL, "plugins", "--json"], capture_output=True, text=True, env=_env(), timeout=120)
    infos = {i["name"]: i for i in json.loads(out.stdout)}
    assert infos["triton"]["distribution"] == "funnel-triton" and infos["triton"]["operators"] == []
    assert infos["triton"]["hooks"] == ["register_commands"] and not infos["triton"].get("error")
    out = subprocess.run([FUNNEL, "serve", "--help"], capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode == 0 and "--admin-key" in out.stdout, out.stdout + out.stderr


def test_leaving_the_plugin_out_names_it() -> None:
    out = subprocess.run([FUNNEL, "serve", "repo"], capture_output=True, text=True,
                         env=_env(FUNNEL_LOAD_PLUGINS=""), timeout=120)
    assert out.returncode == 2 and "pip install funnel-triton" in out.stderr, out.stdout + out.stderr


def test_loading_the_plugin_imports_no_client_library() -> None:
    """What every `funnel` start and every served model pays for this plugin: no tritonclient, no pandas."""
    code = ("import sys; from funnel.cli import cli; from funnel_triton import plugin; plugin.register_commands(cli=cli); "
            "print(sorted(m for m in ('tritonclient', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_core_never_imports_funnel_triton() -> None:
    imports = re.compile(r"^\s*(from|import)\s+funnel_triton\b", re.M)
    hits = [str(p.relative_to(ROOT)) for p in (ROOT / "core" / "src").rglob("*.py")
            if imports.search(p.read_text(encoding="utf-8"))]
    assert hits == [], f"core imports or names funnel_triton in {hits}; it must stand alone"
