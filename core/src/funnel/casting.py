"""One casting rule for every path (requests, in-process and served; model inputs): lossless only.

An integer array is cast to another integer dtype only when every value fits (range-checked);
float → integer only when every value is a whole number in range; integer → float only when
every value is exactly representable; float64 → float32 when every finite value is in range
(the one precision-narrowing cast, for measurements, never for ids); bool → any number.
Anything else raises the caller's error class, naming the column and where it happened.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funnel.errors import SchemaError

__all__ = ["cast_lossless", "check_castable"]

_FLOAT_EXACT_INT = {np.dtype(np.float16): 2**11, np.dtype(np.float32): 2**24, np.dtype(np.float64): 2**53}


def _dtype_of(arr: Any) -> np.dtype:
    return np.dtype(str(arr.dtype).replace("torch.", ""))


def check_castable(have: Any, want: Any) -> bool:
    """Whether a column of dtype ``have`` may be cast to ``want`` at all (values checked later).

    Used at graph-build time: integer ↔ integer, bool → number, integer → float,
    float → float. Strings and float → integer are not castable by schema alone.
    """
    have, want = np.dtype(have), np.dtype(want)
    if have == want:
        return True
    if have.kind == "b":
        return want.kind in "biuf"
    if have.kind in "iu":
        return want.kind in "iuf"
    if have.kind == "f":
        return want.kind == "f"
    return False


def cast_lossless(arr: Any, want: Any, *, column: str, where: str = "", error: type[Exception] = SchemaError) -> Any:
    """``arr`` (numpy, cupy or torch) as dtype ``want``, or ``error`` when a value would change.

    ``column`` and ``where`` (an operator or "request") go into the message.
    """
    want = np.dtype(want)
    have = _dtype_of(arr)
    if have == want:
        return arr
    at = f"{where}: " if where else ""
    size = int(np.prod(arr.shape)) if hasattr(arr, "shape") else len(arr)
    if have.kind in "OUS" or want.kind in "OUS":
        raise error(f"{at}column {column!r} has dtype {have}, expected {want}; strings and numbers are never cast")
    if have.kind == "b":
        return _astype(arr, want)
    if want.kind == "b":
        raise error(f"{at}column {column!r} has dtype {have}, expected bool; send booleans")
    if size == 0:
        return _astype(arr, want)
    lo, hi = _minmax(arr)
    if want.kind in "iu":
        info = np.iinfo(want)
        if have.kind == "f":
            if not _all_whole(arr):
                raise error(
                    f"{at}column {column!r} holds non-integer values (dtype {have}) where {want} ids are "
                    "expected; send integers"
                )
        if lo < info.min or hi > info.max:
            raise error(
                f"{at}column {column!r} has values in [{lo}, {hi}], outside the range of {want} "
                f"[{info.min}, {info.max}]; they cannot be cast without wrapping"
            )
        return _astype(arr, want)
    # want is a float
    if have.kind in "iu":
        limit = _FLOAT_EXACT_INT[want]
        if lo < -limit or hi > limit:
            raise error(
                f"{at}column {column!r} has integer values in [{lo}, {hi}] that {want} cannot hold exactly "
                f"(beyond ±{limit}); send {want} values"
            )
        return _astype(arr, want)
    if want.itemsize < have.itemsize:
        fin = np.finfo(want)
        if (np.isfinite(lo) and lo < fin.min) or (np.isfinite(hi) and hi > fin.max):
            raise error(f"{at}column {column!r} has values in [{lo}, {hi}], outside the range of {want}")
    return _astype(arr, want)


def _astype(arr: Any, want: np.dtype) -> Any:
    if type(arr).__module__.startswith("torch"):
        import torch  # noqa: PLC0415

        return arr.to(getattr(torch, want.name))
    return arr.astype(want)


def _minmax(arr: Any) -> tuple[Any, Any]:
    if type(arr).__module__.startswith("torch"):
        return arr.min().item(), arr.max().item()
    if np.dtype(arr.dtype).kind == "f":
        finite = arr[arr == arr]  # NaN compares unequal to itself
        if finite.size == 0:
            return float("nan"), float("nan")
        return finite.min().item(), finite.max().item()
    return arr.min().item(), arr.max().item()


def _all_whole(arr: Any) -> bool:
    if type(arr).__module__.startswith("torch"):
        return bool((arr == arr.round()).all().item())
    return bool((arr == arr.round()).all().item())
