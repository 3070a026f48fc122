"""The plugin is installed, found through its entry point and listed by `funnel plugins`."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

from funnel.registry import get_operator
from funnel_sampling import SoftmaxSampling, TopK

FUNNEL = Path(sys.executable).with_name("funnel")


def test_entry_point_and_registry() -> None:
    eps = importlib.metadata.entry_points(group="funnel.plugins", name="sampling")
    assert [ep.value for ep in eps] == ["funnel_sampling.plugin"]
    assert get_operator("sampling.SoftmaxSampling") is SoftmaxSampling
    assert get_operator("sampling.TopK") is TopK


def test_funnel_plugins_lists_the_operators() -> None:
    proc = subprocess.run([str(FUNNEL), "plugins", "--json"], capture_output=True, text=True, timeout=120, check=True)
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    info = plugins["sampling"]
    assert info["distribution"] == "funnel-sampling"
    assert info["version"] == importlib.metadata.version("funnel-sampling")
    assert sorted(info["operators"]) == ["sampling.SoftmaxSampling", "sampling.TopK"]
    assert "error" not in info


def test_saved_configs_load_back_and_are_checked_strictly(tmp_path) -> None:
    import pytest  # noqa: PLC0415
    from funnel.ensemble import checked_config, load_operator  # noqa: PLC0415
    from funnel.errors import ExportError  # noqa: PLC0415

    ops = [TopK(relevance_col="score", topk=3, input_col="ids", pad_id=0, pad_score=-1.0),
           SoftmaxSampling(relevance_col="score", topk=4, seed=7, textbook_temperature=0.5)]
    for op in ops:
        config = json.loads(json.dumps(op.to_config()))  # what an export writes
        loaded = load_operator(op.type_name, config, tmp_path, where="graph.json: node 0")
        assert type(loaded) is type(op) and loaded.to_config() == op.to_config()
        with pytest.raises(ExportError, match="missing required field `pad_score`"):
            checked_config(op.type_name, {k: v for k, v in config.items() if k != "pad_score"})
    topk_config = ops[0].to_config()
    with pytest.raises(ExportError, match="unknown field `seed`"):  # TopK takes no sampling keys
        checked_config("sampling.TopK", {**topk_config, "seed": 1})
    with pytest.raises(ExportError, match="missing required field `seed`"):
        checked_config("sampling.SoftmaxSampling", {**topk_config, "temperature": None, "textbook_temperature": 2.0})
