"""Isolation: a broken plugin hook breaks only that plugin; exports load in ensemble mode with
unused tensors; `funnel graph` reads ensemble-mode repositories; the export's replace never
leaves the target missing; load-time faults (plugin missing, corrupted funnel-graph.json) fail
naming the file / the pip distribution."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from funnel import ColumnSchema, ColumnSelector, Ensemble, Node, Ragged, Schema, Table, registry
from funnel.cli import _add_plugin_commands, cli
from funnel.errors import ServerError
from funnel.hookspecs import hookimpl
from funnel.ops import UnrollFeatures
from funnel_triton import TritonServer
from funnel_testing import LinearScore, RaiseOnValue

from .conftest import record
from .graphs import multistage_ensemble, multistage_request


class BrokenOperators:
    @hookimpl
    def register_operators(self, register):
        register(RaiseOnValue)  # registered, then the hook fails: none of it counts
        raise ImportError("No module named 'some_backend'")


class BrokenCommands:
    @hookimpl
    def register_commands(self, cli):
        raise RuntimeError("this plugin's CLI is broken")


class GoodCommands:
    @hookimpl
    def register_commands(self, cli):
        import click

        @click.command("reliability-hello")
        def hello():
            click.echo("hello")

        cli.add_command(hello)


def test_broken_register_operators_hook_is_that_plugins_error():
    registry.register_plugin(BrokenOperators(), name="broken-ops")
    try:
        with pytest.warns(RuntimeWarning, match="broken-ops.*register_operators.*some_backend"):
            ops = registry.operators()
        assert "funnel.UnrollFeatures" in ops  # core's built-ins and other plugins still resolve
        assert registry.get_operator("funnel.FilterCandidates").__name__ == "FilterCandidates"
        out = CliRunner().invoke(cli, ["plugins", "--json"])
        assert out.exit_code == 0, out.output
        infos = {i["name"]: i for i in json.loads(out.output)}
        assert "some_backend" in infos["broken-ops"]["error"] and infos["broken-ops"]["operators"] == []
        with pytest.raises(registry.OperatorNotFound, match="broken-ops.*failed in register_operators"):
            registry.get_operator("broken-ops.Thing")
    finally:
        registry.unregister_plugin("broken-ops")
    record("isolation", "a plugin whose register_operators raises", "that plugin's error; the rest works",
           "reported by `funnel plugins`; core and other operators resolve")


def test_broken_register_commands_hook_leaves_other_commands():
    registry.register_plugin(BrokenCommands(), name="broken-cli")
    registry.register_plugin(GoodCommands(), name="good-cli")
    try:
        _add_plugin_commands()
        assert "reliability-hello" in cli.commands
        out = CliRunner().invoke(cli, ["plugins"])
        assert out.exit_code == 0 and "broken-cli" in out.output and "this plugin's CLI is broken" in out.output
    finally:
        cli.commands.pop("reliability-hello", None)
        registry.unregister_plugin("broken-cli")
        registry.unregister_plugin("good-cli")
    record("isolation", "a plugin whose register_commands raises", "other plugins' commands still load",
           "other commands loaded; the error shown by `funnel plugins`")


def _unused_graph() -> tuple[Ensemble, Table]:
    """UnrollFeatures emits user_id per candidate, which nothing reads; `extra` is a request
    column no operator reads."""
    req = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("user_age", "float32"),
                  ColumnSchema("candidates", "int64", dims=(None,)), ColumnSchema("extra", "int64")])
    unrolled = Node.coerce(["candidates"]) >> UnrollFeatures("candidates", ColumnSelector(["user_id", "user_age"]))
    scored = unrolled >> LinearScore()
    table = Table({"user_id": np.array([1, 2], dtype=np.int64), "user_age": np.array([20, 30], dtype=np.float32),
                   "candidates": Ragged.from_lists([[3, 4], [5]], dtype="int64"), "extra": np.array([7, 8], dtype=np.int64)})
    return Ensemble(scored, req), table


def test_ensemble_mode_loads_graphs_with_unused_tensors_and_funnel_graph_reads_it(tmp_path):
    ens, table = _unused_graph()
    repo = ens.export(tmp_path / "repo", mode="ensemble")
    with TritonServer(repo, timeout=60, watchdog=False) as server:
        assert server.infer(table) == ens.transform(table)
    out = CliRunner().invoke(cli, ["graph", str(repo), "-o", str(tmp_path / "g.dot")])
    assert out.exit_code == 0, out.output
    assert "UnrollFeatures" in (tmp_path / "g.dot").read_text()
    record("isolation", "ensemble mode: an operator output and a request column nothing reads", "loads and serves",
           "served, equal to in-process; `funnel graph` draws the ensemble repository")


def test_export_replace_never_leaves_the_target_missing(tmp_path, monkeypatch):
    """Every filesystem step of an overwriting export is followed by a check that the target
    directory exists (deterministic: no polling race). Before, the old repository was renamed
    aside first, leaving a moment with no target."""
    import os

    import funnel.triton.export as export_module

    ens, _ = _unused_graph()
    target = tmp_path / "repo"
    ens.export(target)
    steps: list[tuple[str, bool]] = []
    real_replace, real_exchange = os.replace, export_module._exchange

    def replace(a, b):
        real_replace(a, b)
        steps.append(("replace", target.is_dir()))

    def exchange(a, b):
        done = real_exchange(a, b)
        steps.append(("exchange", target.is_dir()))
        return done

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(export_module, "_exchange", exchange)
    for _ in range(3):
        ens.export(target, overwrite=True)
    assert steps and all(ok for _, ok in steps), steps
    assert ("exchange", True) in steps and ("replace", True) not in steps  # one atomic swap each time
    assert (target / "funnel" / "1" / "funnel-graph.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers
    record("isolation", "3 overwriting exports, the target checked after every rename", "never missing",
           f"one atomic swap (renameat2 RENAME_EXCHANGE) per export; target present after all {len(steps)} steps")


def test_load_faults_name_the_cause(tmp_path):
    repo = multistage_ensemble().export(tmp_path / "repo")
    with pytest.raises(ServerError, match="funnel-faiss.*FUNNEL_LOAD_PLUGINS"):
        TritonServer(repo, timeout=60, watchdog=False, env={"FUNNEL_LOAD_PLUGINS": "sampling"}).start()
    record("faults", "plugin left out at load (FUNNEL_LOAD_PLUGINS=sampling)", "fails naming funnel-faiss",
           "load fails: 'funnel-faiss ... installed but not loaded: FUNNEL_LOAD_PLUGINS=... leaves it out'")
    graph_file = repo / "funnel" / "1" / "funnel-graph.json"
    graph_file.write_bytes(graph_file.read_bytes()[:-40])
    with pytest.raises(ServerError, match="funnel-graph.json is not valid JSON"):
        TritonServer(repo, timeout=60, watchdog=False).start()
    record("faults", "funnel-graph.json truncated by 40 bytes", "fails naming the file", "load fails: '...funnel-graph.json is not valid JSON'")
    assert multistage_request(1) is not None
