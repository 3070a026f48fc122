"""``funnel torch info MODEL``: format, inputs (how each is fed), outputs, dtypes, dynamic dims."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from funnel_torch.cli import torch_group
from funnel_torch.testing import CAT, ITEM, MAX_LEN, N_ITEMS

FUNNEL = str(Path(sys.executable).parent / "funnel")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FUNNEL, "torch", "info", *args], capture_output=True, text=True, timeout=120)


def test_info_traced_t4r_model(t4r_traced):
    out = _run(str(t4r_traced), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert (info["format"], info["call"], info["row_wise"]) == ("torchscript", "dict", False)
    fed = {(i["tensor"], i["column"], i["fed_as"]) for i in info["inputs"]}
    assert fed == {(ITEM + "__values", ITEM, "values"), (ITEM + "__offsets", ITEM, "offsets"),
                   (CAT + "__values", CAT, "values")}
    assert info["outputs"] == [{"name": "output", "dtype": "float32", "dims": [None, N_ITEMS]}]
    text = CliRunner().invoke(torch_group, ["info", str(t4r_traced)])
    assert text.exit_code == 0 and "one dict of tensors" in text.output and "(list offsets)" in text.output


def test_info_export_program_shows_fixed_and_dynamic_dims(padded_export):
    out = CliRunner().invoke(torch_group, ["info", str(padded_export), "--max-sequence-length", str(MAX_LEN), "--json"])
    assert out.exit_code == 0, out.output
    (inp,) = json.loads(out.output)["inputs"]
    assert (inp["fed_as"], inp["dtype"], inp["dims"], inp["length"]) == ("padded", "int64", [None, MAX_LEN], MAX_LEN)
    assert "?" in CliRunner().invoke(torch_group, ["info", str(padded_export)]).output  # the dynamic batch dim


def test_info_on_a_non_model_file_says_what_is_wrong(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("not a model")
    out = CliRunner().invoke(torch_group, ["info", str(bad)])
    assert out.exit_code != 0
    assert "is not a TorchScript file" in out.output and "Traceback" not in out.output
