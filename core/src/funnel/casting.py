"""One casting rule for every path (requests, in-process and served; model inputs): lossless only.

An integer array is cast to another integer dtype only when every value fits (range-checked);
float → integer only when every value is a whole number in range; integer → float only when
every value is exactly representable; float64 → float32 when every finite value is in range
(the one precision-narrowing cast, for measurements, never for ids); bool → any number.
Anything else raises the caller's error class, naming the column and where it happened.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from funnel.errors import SchemaError

__all__ = ["cast_lossless", "check_castable"]

_FLOAT_EXACT_INT = {np.dtype(np.float16): 2**11, np.dtype(np.float32): 2**24, np.dtype(np.float64): 2**53}
# what each dtype kind may become by schema alone: integer ↔ integer, bool → number, integer → float,
# float → float (strings and float → integer need their values checked, so never by schema)
_CASTABLE = {"b": "biuf", "i": "iuf", "u": "iuf", "f": "f"}


def check_castable(have: Any, want: Any) -> bool:
    """Whether a column of dtype ``have`` may be cast to ``want`` at all (values checked later, at run time)."""
    have, want = np.dtype(have), np.dtype(want)
    return have == want or want.kind in _CASTABLE.get(have.kind, "")


def cast_lossless(arr: Any, want: Any, *, column: str, where: str = "", error: type[Exception] = SchemaError) -> Any:
    """``arr`` (numpy/cupy/torch) as ``want``, or ``error`` naming ``column`` and ``where`` if a value would change."""
    want, have = np.dtype(want), np.dtype(str(arr.dtype).replace("torch.", ""))
    if have == want:
        return arr
    at = f"{where}: " if where else ""
    if have.kind in "OUS" or want.kind in "OUS":
        raise error(f"{at}column {column!r} has dtype {have}, expected {want}; strings and numbers are never cast")
    if want.kind == "b" and have.kind != "b":
        raise error(f"{at}column {column!r} has dtype {have}, expected bool; send booleans")
    if have.kind == "b" or 0 in tuple(arr.shape):  # nothing to check
        return _astype(arr, want)
    lo, hi = _minmax(arr)
    if want.kind in "iu":
        info = np.iinfo(want)
        if have.kind == "f" and not bool((arr == arr.round()).all().item()):
            raise error(
                f"{at}column {column!r} holds non-integer values (dtype {have}) where {want} ids are "
                "expected; send integers"
            )
        if lo < info.min or hi > info.max:
            raise error(
                f"{at}column {column!r} has values in [{lo}, {hi}], outside the range of {want} "
                f"[{info.min}, {info.max}]; they cannot be cast without wrapping"
            )
    elif have.kind in "iu":  # to a float
        limit = _FLOAT_EXACT_INT[want]
        if lo < -limit or hi > limit:
            raise error(
                f"{at}column {column!r} has integer values in [{lo}, {hi}] that {want} cannot hold exactly "
                f"(beyond ±{limit}); send {want} values"
            )
    elif want.itemsize < have.itemsize:  # float → a narrower float
        fin = np.finfo(want)
        if (np.isfinite(lo) and lo < fin.min) or (np.isfinite(hi) and hi > fin.max):
            raise error(f"{at}column {column!r} has values in [{lo}, {hi}], outside the range of {want}")
    return _astype(arr, want)


def _astype(arr: Any, want: np.dtype) -> Any:
    if type(arr).__module__.startswith("torch"):
        return arr.to(getattr(sys.modules["torch"], want.name))
    return arr.astype(want)


def _minmax(arr: Any) -> tuple[Any, Any]:
    if not type(arr).__module__.startswith("torch") and np.dtype(arr.dtype).kind == "f":
        arr = arr[arr == arr]  # NaN compares unequal to itself
        if arr.size == 0:
            return float("nan"), float("nan")
    return arr.min().item(), arr.max().item()
