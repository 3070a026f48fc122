"""Functions and classes saved as readable code; loaded only with the opt-in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import funnel_workflow as nvt
from funnel_workflow import CodeError, UntrustedCodeError, ops
from funnel_workflow.code import function_from_config, function_to_config, trusting

SCALE = 3


def scaled(col):
    return col * SCALE + OFFSET


OFFSET = 1


def scaled_by_default(col, scale=SCALE, *, offset=OFFSET):
    return col * scale + offset


def annotated(col: pd.Series) -> pd.Series:
    return col + 1


def array_default(col, *, arr=np.zeros(2)):  # noqa: B008 - the case under test
    return col + arr.sum()


def test_function_source_with_globals_round_trip():
    cfg = function_to_config(scaled)
    assert "def scaled" in cfg["source"]
    assert cfg["globals"]["SCALE"] == {"constant": 3} and cfg["globals"]["OFFSET"] == {"constant": 1}
    with pytest.raises(UntrustedCodeError, match="trust_code=True"):
        function_from_config(cfg)
    with trusting(True):
        fn = function_from_config(cfg)
    assert fn(np.arange(3)).tolist() == [1, 4, 7]


def test_lambda_with_closure_and_module():
    k = 2.5
    f = lambda col: np.round(col * k)  # noqa: E731
    cfg = function_to_config(f)
    assert cfg["source"] == "lambda col: np.round(col * k)"
    assert cfg["globals"]["np"] == {"module": "numpy"} and cfg["globals"]["k"] == {"constant": 2.5}
    with trusting(True):
        assert function_from_config(cfg)(np.array([1.0, 2.0])).tolist() == [2.0, 5.0]


def test_installed_function_saved_by_import_path():
    assert function_to_config(np.log1p) == {"import": "numpy:log1p"}
    cfg = function_to_config(pd.to_datetime)  # the module path depends on the pandas version
    assert set(cfg) == {"import"} and cfg["import"].startswith("pandas") and cfg["import"].endswith(":to_datetime")
    with trusting(True):
        assert function_from_config(cfg) is pd.to_datetime


def test_unsaveable_global_is_a_clear_error():
    table = {"a": 1}
    with pytest.raises(CodeError, match="global 'table' of type dict"):
        function_to_config(lambda col: col + table["a"])


def test_workflow_with_module_function_round_trip(tmp_path):
    df = pd.DataFrame({"a": [1, 2, 3]})
    wf = nvt.Workflow(nvt.ColumnSelector(["a"]) >> scaled >> ops.Rename(postfix="_s")).fit(nvt.Dataset(df))
    path = wf.save(tmp_path / "wf")
    with pytest.raises(UntrustedCodeError, match="function scaled"):
        nvt.Workflow.load(path)
    loaded = nvt.Workflow.load(path, trust_code=True)
    assert loaded.transform(df).compute()["a_s"].tolist() == [4, 7, 10]


@pytest.mark.parametrize(
    "cfg,match",
    [
        ({"name": "scaled", "globals": {}}, r"saved code must be .*got \['globals', 'name'\]"),
        ({"source": "def other(col):\n    return col\n", "name": "scaled", "globals": {}},
         "the saved code does not define 'scaled'"),
        ({"source": "def scaled(col):\n    return helper(col)\n", "name": "scaled", "globals": {"helper": {"src": "x"}}},
         r"saved code must be .*got \['src'\]"),
    ],
)
def test_malformed_saved_code_is_a_clear_error(cfg, match):
    # these were bare KeyErrors ('source', 'scaled') from deep inside the loader
    with trusting(True), pytest.raises(CodeError, match=match):
        function_from_config(cfg, "wf/workflow.json: operator LambdaOp(scaled)")


def test_an_edited_workflow_file_names_the_file_and_operator(tmp_path):
    import json  # noqa: PLC0415

    df = pd.DataFrame({"a": [1, 2, 3]})
    path = nvt.Workflow(nvt.ColumnSelector(["a"]) >> scaled).fit(nvt.Dataset(df)).save(tmp_path / "wf")
    doc_file = next(path.rglob("workflow.json"))
    text = doc_file.read_text()
    assert '"def scaled' in text
    doc_file.write_text(text.replace('"name":"scaled"', '"name":"scaled_v2"').replace('"name": "scaled"', '"name": "scaled_v2"'))
    json.loads(doc_file.read_text())
    with pytest.raises(CodeError, match=r"workflow.json: operator .*does not define 'scaled_v2'"):
        nvt.Workflow.load(path, trust_code=True)


def test_names_in_defaults_are_saved_and_annotations_need_none():
    # SCALE/OFFSET appear only in the def line: they were left out and loading failed with a NameError;
    # pd appears only in annotations: loading failed the same way
    cfg = function_to_config(scaled_by_default)
    assert cfg["globals"]["SCALE"] == {"constant": 3} and cfg["globals"]["OFFSET"] == {"constant": 1}
    with trusting(True):
        assert function_from_config(cfg)(np.arange(3)).tolist() == [1, 4, 7]
        assert function_from_config(function_to_config(annotated))(np.arange(2)).tolist() == [1, 2]


def test_a_keyword_only_default_that_is_no_constant_is_refused():
    with pytest.raises(CodeError, match="array_default has a default value of type ndarray"):
        function_to_config(array_default)
