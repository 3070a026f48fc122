"""The plugin registry: fake plugins by name, real entry points, errors, FUNNEL_LOAD_PLUGINS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from funnel import ColumnSchema, Ensemble, Operator, Schema, Table, hookimpl, registry
from funnel.errors import OperatorNotFound, PluginNotInstalled

FIXTURES = Path(__file__).parent / "fixtures"


class Triple(Operator):
    type_name = "fake.Triple"

    def compute_output_schema(self, input_schema):
        return input_schema

    def transform(self, table):
        return Table({k: np.asarray(v) * 3 for k, v in table.items()})


class FakePlugin:
    @hookimpl
    def register_operators(self, register):
        register(Triple)


def test_builtins_register_through_the_hook():
    infos = {i.name: i for i in registry.plugins()}
    assert infos["funnel"].operators == ["funnel.UnrollFeatures", "funnel.FilterCandidates", "funnel.Cast", "funnel.AsType",
                                         "funnel.Select", "funnel.Rename", "funnel.KnownIds", "funnel.Fallback"]
    assert infos["funnel"].hooks == ["register_operators"]
    assert registry.get_operator("funnel.UnrollFeatures").__name__ == "UnrollFeatures"


def test_fake_plugin_registered_by_name_round_trips(tmp_path):
    registry.register_plugin(FakePlugin(), name="fake")
    try:
        assert registry.get_operator("fake.Triple") is Triple
        assert "fake.Triple" in registry.operators()
        ens = Ensemble(["x"] >> Triple(), Schema([ColumnSchema("x", "int64")]))
        ens.save(tmp_path / "g")
        assert Ensemble.load(tmp_path / "g").transform({"x": np.array([1, 2])})["x"].tolist() == [3, 6]
    finally:
        registry.unregister_plugin("fake")
    with pytest.raises(OperatorNotFound, match="unknown operator 'fake.Triple'.*funnel.UnrollFeatures"):
        registry.get_operator("fake.Triple")


def test_known_plugin_not_installed_names_the_distribution():
    with pytest.raises(PluginNotInstalled, match="pip install funnel-faiss") as err:
        registry.get_operator("faiss.QueryFaiss")
    assert err.value.distribution == "funnel-faiss"
    with pytest.raises(PluginNotInstalled, match="pip install acme-funnel-ops"):
        registry.get_operator("acme.Thing", distribution="acme-funnel-ops")


def test_duplicate_registration_is_an_error():
    class Again:
        @hookimpl
        def register_operators(self, register):
            register(type("Other", (Triple,), {"type_name": "fake.Triple"}))

    registry.register_plugin(FakePlugin(), name="fake")
    registry.register_plugin(Again(), name="again")
    try:
        # the second registration is that plugin's error; the first one and the rest still work
        with pytest.warns(RuntimeWarning, match="registered twice"):
            ops = registry.operators()
        assert ops["fake.Triple"] is Triple
        infos = {i.name: i for i in registry.plugins()}
        assert "registered twice: by 'fake' and 'again'" in infos["again"].error
        assert registry.get_operator("funnel.UnrollFeatures").__name__ == "UnrollFeatures"
    finally:
        registry.unregister_plugin("fake")
        registry.unregister_plugin("again")


def test_misspelled_hook_fails_at_load():
    class Typo:
        @hookimpl
        def register_operator(self, register):  # missing "s"
            pass

    with pytest.raises(Exception, match="register_operator"):
        registry.register_plugin(Typo(), name="typo")


def test_unregistered_user_operator_is_found_by_import_path(monkeypatch):
    # importing a module named by a graph file runs code: only with trust_code (a module
    # already imported is resolved without importing anything)
    monkeypatch.delitem(sys.modules, "custom_ops", raising=False)
    monkeypatch.delenv("FUNNEL_TRUST_CODE", raising=False)
    with pytest.raises(OperatorNotFound, match="trust_code=True.*FUNNEL_TRUST_CODE=1"):
        registry.get_operator("custom_ops:ItemAge")
    cls = registry.get_operator("custom_ops:ItemAge", trust_code=True)
    assert cls.__name__ == "ItemAge"
    with pytest.raises(OperatorNotFound, match="could not be imported"):
        registry.get_operator("no_such_module_xyz:Op", trust_code=True)


# -- real packages with entry points, installed by the test run ----------------------------
@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """Install the good and the broken fixture plugin packages into a target directory."""
    target = tmp_path_factory.mktemp("site")
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is installed by tools/venv.sh (requirements/dev.txt)"
    for pkg in ("good_plugin", "broken_plugin"):
        subprocess.run(
            [uv, "pip", "install", "-q", "--no-deps", "--target", str(target), str(FIXTURES / pkg)],
            check=True,
            timeout=300,
            env={**os.environ, "UV_INDEX_STRATEGY": "unsafe-best-match"},
        )
    return target


def run_cli(site: Path, *args: str, load: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("FUNNEL_LOAD_PLUGINS", None)
    if load is not None:
        env["FUNNEL_LOAD_PLUGINS"] = load
    funnel = Path(sys.executable).parent / "funnel"
    return subprocess.run([str(funnel), *args], capture_output=True, text=True, env=env, timeout=120)


def test_entry_point_discovery_and_broken_plugin_isolation(plugin_site):
    proc = run_cli(plugin_site, "plugins", "--json", load="testgood,testbroken,funnel-test-good")
    assert proc.returncode == 0, proc.stderr
    infos = {i["name"]: i for i in json.loads(proc.stdout)}
    assert infos["testgood"]["operators"] == ["testgood.Double"]
    assert infos["testgood"]["version"] == "1.2.3"
    assert infos["testgood"]["distribution"] == "funnel-test-good"
    assert 'Error importing plugin "testbroken"' in infos["testbroken"]["error"]
    assert "deliberate" in infos["testbroken"]["error"]
    assert infos["funnel"]["operators"]  # the rest still works
    text = run_cli(plugin_site, "plugins", load="testgood,testbroken")
    assert "testgood 1.2.3" in text.stdout and "ERROR" in text.stdout


def test_funnel_load_plugins_restricts_and_empty_loads_none(plugin_site):
    only_good = json.loads(run_cli(plugin_site, "plugins", "--json", load="testgood").stdout)
    assert [i["name"] for i in only_good] == ["funnel", "testgood"]
    none = json.loads(run_cli(plugin_site, "plugins", "--json", load="").stdout)
    assert [i["name"] for i in none] == ["funnel"]


def test_entry_point_operator_used_in_a_graph(plugin_site):
    code = (
        "import numpy as np\n"
        "from funnel import Ensemble, Schema, ColumnSchema, registry\n"
        "Double = registry.get_operator('testgood.Double')\n"
        "e = Ensemble(['x'] >> Double(), Schema([ColumnSchema('x', 'int64')]))\n"
        "print(e.transform({'x': np.array([1, 2])})['x'].tolist())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(plugin_site), "FUNNEL_LOAD_PLUGINS": "testgood"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[2, 4]"


def test_register_commands_hook_adds_a_cli_command():
    import click
    from click.testing import CliRunner

    from funnel import cli as cli_module

    @click.command("hello-plugin")
    def hello():
        """Say hello."""
        click.echo("hello from a plugin")

    class CommandPlugin:
        @hookimpl
        def register_commands(self, cli):
            cli.add_command(hello)

    registry.register_plugin(CommandPlugin(), name="cmds")
    try:
        cli_module._add_plugin_commands()
        result = CliRunner().invoke(cli_module.cli, ["hello-plugin"])
        assert result.exit_code == 0 and "hello from a plugin" in result.output
    finally:
        registry.unregister_plugin("cmds")
        cli_module.cli.commands.pop("hello-plugin", None)
