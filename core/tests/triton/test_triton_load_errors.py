"""Models that must not load: a missing plugin (pip hint), string columns under numpy 2."""

from __future__ import annotations

import pytest

from funnel import ColumnSchema, Ensemble, Node, Schema
from funnel.errors import ServerError
from funnel_triton import TritonServer
from funnel.triton.runtime import NUMPY2
from funnel_testing import LinearScore


class PluginScore(LinearScore):
    """Stands for an operator of the funnel-sampling plugin that the server does not have."""

    type_name = "sampling.PluginScore"




def test_missing_plugin_and_strings_fail_the_load(tmp_path):
    schema = Schema([ColumnSchema("candidates", "int64"), ColumnSchema("user_age", "float32")])
    plugin_graph = Ensemble(Node.coerce(["candidates", "user_age"]) >> PluginScore(), schema)
    repo = tmp_path / "repo"
    plugin_graph.export(tmp_path / "a", name="needs_plugin")
    str_schema = Schema([ColumnSchema("name", "str"), ColumnSchema("x", "float32")])
    Ensemble(Node.coerce(["name", "x"]), str_schema).export(tmp_path / "b", name="strings")
    repo.mkdir()
    for sub in ("a", "b"):
        for model in (tmp_path / sub).iterdir():
            if model.is_dir():
                model.rename(repo / model.name)
    with pytest.raises(ServerError) as info:
        with TritonServer(repo, timeout=90):
            pass
    message = str(info.value)
    assert "pip install funnel-sampling" in message
    if NUMPY2:
        assert "string column(s) ['name']" in message and "EXECUTION_ENV_PATH" in message


def test_binary_without_exec_bit_is_explained(tmp_path):
    import pytest

    from funnel.errors import ServerError
    from funnel_triton.server import find_tritonserver

    fake = tmp_path / "tritonserver"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o644)
    with pytest.raises(ServerError, match="not executable.*chmod"):
        find_tritonserver(fake)
