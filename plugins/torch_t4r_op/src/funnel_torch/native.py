"""Ensemble mode on a full Triton: PredictPyTorch as a native ``pytorch_libtorch`` model (export only).

Written for TorchScript models (files, or nn.Modules traced at export) fed with values/offsets
or one value per row; the embedded server has no libtorch backend, so it is served by funnel's
Python runner there (``export(mode="ensemble", native_backends=False)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from funnel.operator import NativeTritonModel

__all__ = ["native_model", "write_native_model"]


def native_model(op: Any) -> NativeTritonModel | None:
    """None for now: every PredictPyTorch runs in funnel's Python runner in ensemble mode."""
    return None


def write_native_model(op: Any, version_dir: Path) -> None:
    raise NotImplementedError(f"{op.label} declares no native Triton model")
