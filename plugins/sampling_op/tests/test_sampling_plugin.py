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
