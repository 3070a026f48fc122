import numpy as np
import pytest

from funnel.casting import cast_lossless, check_castable
from funnel.errors import RequestError, SchemaError


def test_int64_to_int32_in_range():
    out = cast_lossless(np.array([0, 5, 2**31 - 1], dtype=np.int64), np.int32, column="item_id")
    assert out.dtype == np.int32 and out.tolist() == [0, 5, 2**31 - 1]


def test_int64_to_int32_out_of_range_names_column_and_never_wraps():
    with pytest.raises(SchemaError, match=r"'item_id'.*outside the range of int32"):
        cast_lossless(np.array([2**40 + 5], dtype=np.int64), np.int32, column="item_id", where="PredictX")


def test_float_ids_are_refused_unless_whole():
    assert cast_lossless(np.array([3.0, 4.0]), np.int64, column="u").tolist() == [3, 4]
    with pytest.raises(RequestError, match="non-integer"):
        cast_lossless(np.array([3.5]), np.int64, column="u", error=RequestError)
    with pytest.raises(RequestError, match="non-integer"):
        cast_lossless(np.array([np.nan]), np.int64, column="u", error=RequestError)


def test_int_to_float_exactness_and_float_narrowing():
    assert cast_lossless(np.array([2**24], dtype=np.int64), np.float32, column="x").dtype == np.float32
    with pytest.raises(SchemaError, match="exactly"):
        cast_lossless(np.array([2**24 + 1], dtype=np.int64), np.float32, column="x")
    assert cast_lossless(np.array([1.5, np.nan]), np.float32, column="x").dtype == np.float32
    with pytest.raises(SchemaError, match="outside the range"):
        cast_lossless(np.array([1e300]), np.float32, column="x")


def test_strings_never_cast_and_schema_level_rule():
    with pytest.raises(SchemaError, match="never cast"):
        cast_lossless(np.array(["a"], dtype=object), np.int64, column="s")
    assert check_castable(np.int64, np.int32) and check_castable(np.int32, np.float32)
    assert not check_castable(np.float32, np.int64) and not check_castable(np.int64, object)
