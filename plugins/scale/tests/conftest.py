"""Shared fixtures of the funnel-scale tests: the funnel CLI with this plugin's commands, a
core-only export, and a real S3-compatible server (moto's server mode) on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from funnel_testing import cli_with_commands, demo_ensemble, loopback_server

SCALE_COMMANDS = ("score", "repo", "deploy")
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "funneltestkey",
    "AWS_SECRET_ACCESS_KEY": "funnel-test-secret-value",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def funnel_cli() -> Iterator[click.Group]:
    """``funnel.cli.cli`` with this plugin's commands (what ``funnel`` has when funnel-scale is installed)."""
    from funnel_scale import plugin  # noqa: PLC0415

    with cli_with_commands(plugin, SCALE_COMMANDS) as cli:
        yield cli


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export of core's demo graph (filter → unroll → score → top-k): no plugin operators."""
    return demo_ensemble().export(tmp_path_factory.mktemp("demo") / "repo")


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """``host:port`` of a moto_server started here (the ``[test]`` extra installs it)."""
    exe = Path(sys.executable).parent / "moto_server"
    assert exe.is_file(), f"{exe} missing: pip install 'funnel-scale[test]' (moto[server])"
    with loopback_server(lambda port: [str(exe), "-H", "127.0.0.1", "-p", str(port)]) as address:
        yield address


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Test credentials in the environment, nothing else that would redirect boto3."""
    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(k, raising=False)
    return CREDENTIALS
