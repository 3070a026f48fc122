"""Each operator: NVTabular's parameters and semantics, B = 1 and B > 1, nulls, empty input,
list columns; offline transform equals the serving (array) path for the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import funnel_workflow as nvt
from funnel.errors import FunnelError, SchemaError
from funnel.table import Ragged, Table
from funnel_workflow import ops


def fit(node, df, **kw):
    wf = nvt.Workflow(node)
    wf.fit(nvt.Dataset(df, **kw))
    return wf


def run(node, df, data=None):
    wf = fit(node, df)
    return wf, wf.transform(df if data is None else data).compute()


DF = pd.DataFrame({
    "a": np.array([3, 1, 3, 7, 3, 1, 9], dtype=np.int64),
    "s": ["x", "y", "x", None, "z", "y", "x"],
    "f": np.array([1.0, np.nan, 4.0, 2.0, 8.0, 0.5, 3.0]),
    "g": np.array([1, 1, 2, 2, 2, 3, 3], dtype=np.int64),
    "t": np.array([10, 5, 30, 20, 25, 1, 2], dtype=np.int64),
})


# -- Categorify ------------------------------------------------------------------------------
def test_categorify_default_encoding_reserves_pad_null_oov():
    wf, out = run(["a", "s"] >> ops.Categorify(), DF)
    # by frequency: a: 3 (x3), 1 (x2), then 7, 9 by value → ids 3, 4, 5, 6 (0 pad, 1 null, 2 OOV)
    assert out["a"].tolist() == [3, 4, 3, 5, 3, 4, 6]
    assert out["s"].tolist() == [3, 4, 3, 1, 5, 4, 3]  # None → 1
    unseen = wf.transform(pd.DataFrame({"a": [3, 12345], "s": ["nope", "y"]})).compute()
    assert unseen["a"].tolist() == [3, 2] and unseen["s"].tolist() == [2, 4]
    assert wf.output_schema["a"].properties["cardinality"] == 7
    assert wf.categories("s")["s"].tolist() == ["x", "y", "z"]


def test_categorify_start_index_encoding():
    wf, out = run(["a"] >> ops.Categorify(start_index=1), DF)
    # values sorted: 1, 3, 7, 9 → 2, 3, 4, 5; OOV → 1
    assert out["a"].tolist() == [3, 2, 3, 4, 3, 2, 5]
    assert wf.transform(pd.DataFrame({"a": [42]})).compute()["a"].tolist() == [1]
    assert wf.output_schema["a"].properties["cardinality"] == 6


def test_categorify_freq_threshold_max_size_and_buckets():
    _, out = run(["a"] >> ops.Categorify(freq_threshold=2), DF)
    assert out["a"].tolist() == [3, 4, 3, 2, 3, 4, 2]  # 7 and 9 seen once → OOV
    _, out = run(["a"] >> ops.Categorify(max_size=1), DF)
    assert out["a"].tolist() == [3, 2, 3, 2, 3, 2, 2]
    wf, out = run(["a"] >> ops.Categorify(freq_threshold=2, num_buckets=4), DF)
    assert set(out["a"][[3, 6]]) <= {2, 3, 4, 5} and out["a"][0] == 6  # vocabulary after 4 buckets
    again = wf.transform(DF).compute()
    assert again["a"].tolist() == out["a"].tolist()  # hashing is deterministic
    assert wf.output_schema["a"].properties["cardinality"] == 8
    with pytest.raises(SchemaError, match="num_buckets"):
        ops.Categorify(start_index=1, num_buckets=3)


def test_categorify_list_column_and_decode():
    df = pd.DataFrame({"items": [[5, 6], [6], [], [7, 5, 5]]})
    wf, out = run(["items"] >> ops.Categorify(), df)
    assert [list(x) for x in out["items"]] == [[3, 4], [4], [], [5, 3, 3]]
    assert wf.output_schema["items"].is_list
    assert wf.decode("items", np.array([3, 4, 5])).tolist() == [5, 6, 7]
    assert wf.decode("items", np.array([0, 3]), fill=-1).tolist() == [-1, 5]


# -- element-wise and fitted continuous ops ------------------------------------------------------
def test_normalize_lognormalize_minmax():
    d = DF.dropna()
    _, out = run(["f"] >> ops.Normalize(), d)
    np.testing.assert_allclose(out["f"], ((d.f - d.f.mean()) / d.f.std()).astype(np.float32), rtol=1e-6)
    assert out["f"].dtype == np.float32
    _, out = run(["f"] >> ops.LogOp() >> ops.NormalizeMinMax(), d)
    lg = np.log1p(d.f.astype(np.float32))
    np.testing.assert_allclose(out["f"], (lg - lg.min()) / (lg.max() - lg.min()), rtol=1e-5)


def test_normalize_ignores_nulls_in_fit_and_keeps_them():
    wf, out = run(["f"] >> ops.Normalize(), DF)
    v = DF.f.dropna()
    assert np.isnan(out["f"][1])
    np.testing.assert_allclose(out["f"][0], (1.0 - v.mean()) / v.std(), rtol=1e-6)


@pytest.mark.parametrize("op", [ops.Normalize, ops.NormalizeMinMax])
def test_normalize_refuses_a_column_without_values_at_fit(op):
    # it used to fit silently: Normalize then passed values through unscaled, NormalizeMinMax returned NaN
    d = pd.DataFrame({"f": [1.0, 2.0, 3.0], "e": [np.nan, np.nan, np.nan]})
    with pytest.raises(FunnelError, match=f"{op.__name__}: column 'e' has no non-null value.*FillMissing"):
        fit(["f", "e"] >> op(), d, npartitions=2)
    _, out = run(["e"] >> ops.FillMissing(0.0) >> op(), d)  # what the message says to do
    assert out["e"].tolist() == [0.0, 0.0, 0.0]


def test_fillmissing_clip_bucketize_hashbucket():
    _, out = run(["f"] >> ops.FillMissing(fill_val=-1.0, add_binary_cols=True), DF)
    assert out["f"][1] == -1.0 and out["f_filled"].tolist() == [False, True, False, False, False, False, False]
    _, out = run(["a"] >> ops.Clip(min_value=2, max_value=7), DF)
    assert out["a"].tolist() == [3, 2, 3, 7, 3, 2, 7] and out["a"].dtype == np.int64
    wf, out = run(["a"] >> ops.Bucketize([2, 5]), DF)
    assert out["a"].tolist() == [1, 0, 1, 2, 1, 0, 2]
    assert wf.output_schema["a"].properties["cardinality"] == 3
    _, out = run(["a", "s"] >> ops.HashBucket(10), DF.fillna({"s": ""}))
    assert out["a"].between(0, 9).all() and out["s"].between(0, 9).all()
    assert out["a"][0] == out["a"][2]


@pytest.mark.parametrize("num_buckets,match", [
    (0, "num_buckets for column 'a' must be a positive integer, got 0"),  # hashed every value to 0
    (2.5, "must be a positive integer, got 2.5"),  # used 2 buckets
    (-3, "must be a positive integer, got -3"),  # an OverflowError per batch
    ({"a": 4}, r"no num_buckets for column 'b' \(num_buckets=\['a'\]\)"),  # int(None) inside the schema
])
def test_hashbucket_counts_are_checked(num_buckets, match):
    with pytest.raises(FunnelError, match=match):
        run(["a", "g"] >> ops.Rename(f=lambda c: {"g": "b"}.get(c, c)) >> ops.HashBucket(num_buckets), DF)
    wf, out = run(["a", "g"] >> ops.HashBucket({"a": 4, "g": 2}), DF)
    assert out["a"].between(0, 3).all() and out["g"].between(0, 1).all()
    assert wf.output_schema["g"].properties["cardinality"] == 2


def test_lambda_rename_and_node_rshift_function():
    node = nvt.ColumnSelector(["a"]) >> (lambda col: col * 2) >> ops.Rename(postfix="_x2")
    _, out = run(node, DF)
    assert out.columns.tolist() == ["a_x2"] and out["a_x2"].tolist() == (DF.a * 2).tolist()
    _, out = run(["a", "t"] >> ops.Rename(f=lambda c: c.upper()), DF)
    assert out.columns.tolist() == ["A", "T"]
    with pytest.raises(SchemaError, match="one column"):
        fit(["a", "t"] >> ops.Rename(name="x"), DF)
    # LambdaOp with the frame: f(col, df)
    _, out = run(["a"] >> ops.LambdaOp(lambda col, df: col + df["t"], dependency=["t"]), DF)
    assert out["a"].tolist() == (DF.a + DF.t).tolist()


def test_difference_lag():
    d = DF.sort_values(["g", "t"]).reset_index(drop=True)
    _, out = run(["t"] >> ops.DifferenceLag("g", shift=1), d)
    want = d.groupby("g")["t"].diff()
    np.testing.assert_array_equal(out["t_difference_lag_1"].to_numpy(), want.to_numpy())


def test_join_external():
    ext = pd.DataFrame({"a": [1, 3, 7], "price": [0.5, 1.5, 2.5]})
    wf, out = run(["a", "t"] >> ops.JoinExternal(ext, on="a"), DF)
    want = DF[["a", "t"]].merge(ext, on="a", how="left")
    np.testing.assert_array_equal(out["price"].to_numpy(), want["price"].to_numpy())
    with pytest.raises(SchemaError, match="duplicate"):
        ops.JoinExternal(pd.DataFrame({"a": [1, 1], "p": [1, 2]}), on="a")


def test_add_tags_properties_value_count():
    wf, _ = run(["a"] >> ops.AddTags(["item_id"]) >> ops.AddProperties({"note": "raw"}), DF)
    assert "item_id" in wf.output_schema["a"].tags and wf.output_schema["a"].properties["note"] == "raw"
    df = pd.DataFrame({"l": [[1, 2], [3], [4, 5, 6]]})
    wf, _ = run(["l"] >> ops.ValueCount(), df)
    assert wf.output_schema["l"].properties["value_count"] == {"min": 1, "max": 3}


# -- Groupby, ListSlice, Filter ----------------------------------------------------------------
def test_groupby_all_aggregates():
    aggs = {"t": ["list", "count", "first", "last", "min", "max", "mean", "sum"], "f": ["count", "mean"]}
    wf, out = run(DF[["g", "t", "f"]].columns.tolist() >> ops.Groupby("g", sort_cols="t", aggs=aggs, name_sep="-"), DF)
    s = DF.sort_values(["g", "t"])
    grp = s.groupby("g")
    assert out["g"].tolist() == [1, 2, 3]
    assert [list(v) for v in out["t-list"]] == [list(v) for v in grp["t"].apply(list)]
    for agg in ("count", "first", "last", "min", "max", "mean", "sum"):
        np.testing.assert_allclose(out[f"t-{agg}"].to_numpy(dtype=float), grp["t"].agg(agg).to_numpy(dtype=float))
    np.testing.assert_array_equal(out["f-count"], grp["f"].count())
    np.testing.assert_allclose(out["f-mean"], grp["f"].mean())
    assert wf.output_schema["t-list"].is_list and wf.output_schema["t-count"].dtype == "int64"


def test_groupby_null_key_is_an_error():
    df = pd.DataFrame({"g": [1.0, np.nan], "t": [1, 2]})
    with pytest.raises(FunnelError, match="null"):
        run(["g", "t"] >> ops.Groupby("g", aggs={"t": ["list"]}), df)


@pytest.mark.parametrize(("start", "end", "want"), [
    (0, 2, [[1, 2], [5], []]),
    (-2, None, None),
    (1, -1, [[2, 3], [], []]),
    (-2, 0, None),
])
def test_listslice(start, end, want):
    df = pd.DataFrame({"l": [[1, 2, 3, 4], [5], []]})
    op = ops.ListSlice(start, end) if end is not None else ops.ListSlice(start, 1_000_000)
    _, out = run(["l"] >> op, df)
    lists = [[1, 2, 3, 4], [5], []]
    py_end = end if end is not None else 1_000_000
    expected = want if want is not None else [x[start:py_end] for x in lists]
    assert [list(v) for v in out["l"]] == expected


def test_listslice_pad():
    df = pd.DataFrame({"l": [[1, 2, 3, 4], [5], []]})
    wf, out = run(["l"] >> ops.ListSlice(0, 3, pad=True, pad_value=-1), df)
    assert [list(v) for v in out["l"]] == [[1, 2, 3], [5, -1, -1], [-1, -1, -1]]
    col = wf.output_schema["l"]
    assert col.is_list and not col.is_ragged and col.dims == (3,)


@pytest.mark.parametrize("pad_value,match", [
    (0.5, "not a whole number"),  # padded the int lists with 0
    ("x", "pass a number"),  # failed every batch with int('x')
    (2**70, "range -9223372036854775808..9223372036854775807"),  # failed every batch with an OverflowError
])
def test_listslice_pad_value_must_fit_the_list_dtype(pad_value, match):
    df = pd.DataFrame({"l": [[1, 2, 3, 4], [5], []]})
    strings = pd.DataFrame({"s": [["a", "b"], []]})
    _, out = run(["s"] >> ops.ListSlice(0, 2, pad=True, pad_value=""), strings)
    assert [list(v) for v in out["s"]] == [["a", "b"], ["", ""]]
    with pytest.raises(FunnelError, match=rf"ListSlice: pad_value={pad_value!r} cannot pad column 'l' of dtype int64.*{match}"):
        run(["l"] >> ops.ListSlice(0, 3, pad=True, pad_value=pad_value), df)
    _, out = run(["l"] >> ops.ListSlice(0, 2, pad=True, pad_value=7.0), df)  # a whole float is fine
    assert [list(v) for v in out["l"]] == [[1, 2], [5, 7], [7, 7]]


def test_listslice_pad_value_is_checked_against_the_data_not_a_placeholder():
    # before fit a LambdaOp's output has a placeholder dtype (float64): a string pad must still pass
    df = pd.DataFrame({"l": [[1, 2, 3], []]})
    to_str = ops.LambdaOp(lambda col: col.apply(lambda v: [str(x) for x in v]))
    _, out = run(["l"] >> to_str >> ops.ListSlice(0, 2, pad=True, pad_value=""), df)
    assert [list(v) for v in out["l"]] == [["1", "2"], ["", ""]]


@pytest.mark.parametrize("args", [(1.9, 3), (0, 2.5), (True, 3)])
def test_listslice_indices_must_be_integers(args):
    with pytest.raises(SchemaError, match="ListSlice: (start|end) must be an integer index"):  # 1.9 was sliced as 1
        ops.ListSlice(*args)


def test_filter_offline_and_served():
    node = ["a", "t"] >> ops.Filter(f=lambda df: df["a"] > 2)
    wf, out = run(node, DF)
    assert out["a"].tolist() == [3, 3, 7, 3, 9]
    served = wf.transform_table(Table.from_pandas(DF[["a", "t"]]), serving=True)
    assert served.num_rows == len(DF)  # Filter is offline-only by default
    wf2, _ = run(["a", "t"] >> ops.Filter(f=lambda df: df["a"] > 2, offline_only=False), DF)
    assert wf2.transform_table(Table.from_pandas(DF[["a", "t"]]), serving=True).num_rows == 5


# -- batch sizes, empty input; the array path equals the DataFrame path ----------------------------------
def _pipeline():
    cats = ["a", "s"] >> ops.Categorify()
    cont = ["f"] >> ops.FillMissing() >> ops.LogOp() >> ops.Normalize()
    grouped = (["g", "t"] + cats + cont) >> ops.Groupby("g", sort_cols="t", aggs={"a": ["list", "count"],
                                                                                  "f": ["list", "mean"]})
    return grouped["g", "a_count"] + (grouped["a_list", "f_list"] >> ops.ListSlice(0, 2))


@pytest.mark.parametrize("rows", [0, 1, 3, 7])
def test_batch_sizes_offline_equals_served(rows):
    wf = fit(_pipeline(), DF)
    part = DF.iloc[:rows]
    offline = wf.transform(part).compute()
    served = wf.transform_table(Table.from_pandas(part, schema=wf.input_schema), serving=True)
    assert served.num_rows == len(offline) == part["g"].nunique()
    for name in offline.columns:
        col = served[name]
        got = col.to_lists() if isinstance(col, Ragged) else np.asarray(col).tolist()
        want = [list(v) for v in offline[name]] if isinstance(col, Ragged) else offline[name].tolist()
        assert got == want, name


def test_user_subclass_transform_columns_df():
    class Doubler(ops.Operator):
        def transform(self, columns, df):
            for c in columns.names:
                df[c + "_x2"] = df[c] * 2 + df["t"] * 0
            return df

        def output_column_names(self, columns):
            return nvt.ColumnSelector([c + "_x2" for c in columns.names])

        def dependencies(self):
            return ["t"]

    wf, out = run(["a"] >> Doubler(), DF)
    assert out.columns.tolist() == ["a_x2"] and out["a_x2"].tolist() == (DF.a * 2).tolist()
    assert wf.output_schema["a_x2"].dtype == "int64"  # observed at fit


def test_errors_name_operator_and_column():
    with pytest.raises(SchemaError, match="Normalize.*'s'"):
        fit(["s"] >> ops.Normalize(), DF)
    with pytest.raises(SchemaError, match="nope"):
        fit(["nope"] >> ops.Categorify(), DF)
    wf = fit(["a"] >> ops.Categorify(), DF)
    with pytest.raises(SchemaError, match=r"lacks column\(s\) \['a'\]"):
        wf.transform(pd.DataFrame({"b": [1]}))
    unfitted = nvt.Workflow(["a"] >> ops.Categorify() >> ops.Rename(postfix="_x"))
    assert "Categorify → Rename; not fitted" in repr(unfitted)
    with pytest.raises(FunnelError, match="not fitted"):
        unfitted.transform(DF)
