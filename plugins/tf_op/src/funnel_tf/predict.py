"""PredictTensorflow: run a TensorFlow SavedModel signature on every row of a batch.

TensorFlow is imported only when a model is loaded (constructing the operator from a model,
or ``load_artifacts``), never at module import, so ``funnel plugins`` stays fast.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from funnel.casting import cast_lossless, check_castable
from funnel.errors import ArtifactError, SchemaError
from funnel.operator import NativeTritonModel, Operator
from funnel.schema import ColumnSchema, Schema
from funnel.table import Ragged, Table, to_numpy

__all__ = ["PredictTensorflow", "configure_tensorflow", "ARTIFACT_NAME"]

#: Directory name of the SavedModel inside the operator's artifact (and Triton version) dir.
ARTIFACT_NAME = "model.savedmodel"

_INSTALL_HINT = (
    "TensorFlow is not installed; install it with `pip install 'funnel-tensorflow[cpu]'` "
    "(tensorflow-cpu) or `pip install 'funnel-tensorflow[gpu]'` (tensorflow with CUDA)"
)


def _tf() -> Any:
    try:
        import tensorflow as tf  # noqa: PLC0415 - lazy on purpose
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return tf


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be an integer") from None


def configure_tensorflow(
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
    memory_growth: bool = True,
) -> None:
    """Set TensorFlow's thread pools and GPU memory growth, if TF is not initialized yet.

    Called by PredictTensorflow when it loads a model. ``FUNNEL_TF_INTRA_OP_THREADS`` and
    ``FUNNEL_TF_INTER_OP_THREADS`` override the arguments (a serving process with several
    model instances sets them to share the cores); ``None`` keeps TensorFlow's default
    (all cores). ``memory_growth`` makes TF allocate GPU memory as needed instead of
    grabbing the whole device. Settings TF no longer accepts (it already ran an op) are
    left as they are, with a warning when they differ from what was asked.
    """
    tf = _tf()
    intra = _env_int("FUNNEL_TF_INTRA_OP_THREADS") or intra_op_threads
    inter = _env_int("FUNNEL_TF_INTER_OP_THREADS") or inter_op_threads
    threading = tf.config.threading
    for value, setter, getter, label in (
        (
            intra,
            threading.set_intra_op_parallelism_threads,
            threading.get_intra_op_parallelism_threads,
            "intra",
        ),
        (
            inter,
            threading.set_inter_op_parallelism_threads,
            threading.get_inter_op_parallelism_threads,
            "inter",
        ),
    ):
        if value is None or getter() == value:
            continue
        try:
            setter(int(value))
        except RuntimeError:
            warnings.warn(
                f"PredictTensorflow: TensorFlow is already initialized; {label}-op threads stay at "
                f"{getter()} instead of {value}. Load models before running other TF code.",
                RuntimeWarning,
                stacklevel=2,
            )
    if memory_growth:
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass  # the device is already initialized; nothing can change now


def _dtype_name(tf_dtype: Any) -> str:
    if tf_dtype.name == "string":
        return "str"
    return np.dtype(tf_dtype.as_numpy_dtype).name


def _specs_of(structure: Mapping[str, Any], what: str, signature: str) -> list[dict[str, Any]]:
    tf = _tf()
    specs: list[dict[str, Any]] = []
    for name in sorted(structure):
        spec = structure[name]
        if not isinstance(spec, tf.TensorSpec):
            raise SchemaError(
                f"PredictTensorflow: signature {signature!r} {what} {name!r} is a {type(spec).__name__}; "
                "only dense tensors are supported. Export the model with dense inputs (pad lists, or "
                "run it per candidate after UnrollFeatures)."
            )
        shape = spec.shape.as_list() if spec.shape.rank is not None else None
        if not shape:
            raise SchemaError(
                f"PredictTensorflow: signature {signature!r} {what} {name!r} has shape {spec.shape}; "
                "a batch dimension first is required (e.g. export with shape (None, ...))"
            )
        specs.append({"name": str(name), "dtype": _dtype_name(spec.dtype), "shape": shape})
    return specs


def _signature_specs(loaded: Any, signature: str, where: str) -> tuple[Any, list[dict], list[dict]]:
    """The concrete function of ``signature`` and its input/output specs."""
    sigs = getattr(loaded, "signatures", None) or {}
    if signature not in sigs:
        raise ArtifactError(
            f"PredictTensorflow: the SavedModel at {where} has no signature {signature!r}; "
            f"available: {sorted(sigs)}. Pass signature=... or export one."
        )
    fn = sigs[signature]
    args, kwargs = fn.structured_input_signature
    if args:
        raise SchemaError(
            f"PredictTensorflow: signature {signature!r} takes positional inputs; signatures must "
            "take named inputs (Keras model.export() and tf.saved_model.save signatures do)"
        )
    outputs = fn.structured_outputs
    if not isinstance(outputs, Mapping):
        raise SchemaError(f"PredictTensorflow: signature {signature!r} must return a dict of named outputs")
    return fn, _specs_of(kwargs, "input", signature), _specs_of(outputs, "output", signature)


def _is_scalar_dims(dims: tuple[Any, ...]) -> bool:
    return dims in ((), (1,))


def _output_dims(shape: list[Any]) -> tuple[Any, ...]:
    """Per-row dims of an output column: a (B, 1) output is squeezed to one value per row."""
    dims = tuple(shape[1:])
    return () if dims == (1,) else dims


class PredictTensorflow(Operator):
    """Run a TensorFlow SavedModel signature (or a Keras model) on a batch.

    ``model_or_path`` is a SavedModel directory (from Keras ``model.export()`` or
    ``tf.saved_model.save``), a ``.keras``/``.h5`` file (loaded with ``custom_objects``
    and exported), or an in-memory Keras model (exported to a SavedModel right away).

    Input columns are the signature's input names, with its dtypes; a scalar-per-row input
    accepts ``(B,)`` and ``(B, 1)`` columns. Output columns are the signature's output
    names (Keras export: ``output_0``...). A ``(B, 1)`` output is returned as ``(B,)`` —
    one score per row — other shapes as they are. The operator is row-wise: after
    ``UnrollFeatures`` it runs once on all candidate rows and its outputs come back as
    candidate-aligned list columns.

    ``intra_op_threads``/``inter_op_threads`` size TensorFlow's thread pools when the model
    is loaded (see :func:`configure_tensorflow`; environment variables override them).
    """

    type_name = "tf.PredictTensorflow"
    rowwise = True

    class TensorConfig(msgspec.Struct, forbid_unknown_fields=True):
        """One signature tensor: name, dtype, shape (batch dimension first, ``None`` = any)."""

        name: str
        dtype: str
        shape: list[int | None]

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """What ``to_config`` writes; checked strictly (every key, no defaults) when an export loads."""

        signature: str
        inputs: list[PredictTensorflow.TensorConfig]
        outputs: list[PredictTensorflow.TensorConfig]
        intra_op_threads: int | None
        inter_op_threads: int | None

    def __init__(
        self,
        model_or_path: Any,
        signature: str = "serving_default",
        custom_objects: Mapping[str, Any] | None = None,
        *,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
    ) -> None:
        self.signature = signature
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self._loaded: Any = None
        self._fn: Any = None
        self._source: Path | None = None
        if isinstance(model_or_path, (str, os.PathLike)):
            path = Path(model_or_path)
            if path.is_dir():
                self._load(path)
            elif path.is_file() and path.suffix in (".keras", ".h5"):
                self._load(self._export_keras(self._load_keras_file(path, custom_objects)))
            else:
                raise ArtifactError(
                    f"PredictTensorflow: {str(path)!r} is neither a SavedModel directory nor a .keras/.h5 "
                    "file; pass model.export(dir)'s directory or the Keras model itself"
                )
        else:
            self._load(self._export_keras(model_or_path))

    # -- model loading ----------------------------------------------------------------
    @staticmethod
    def _load_keras_file(path: Path, custom_objects: Mapping[str, Any] | None) -> Any:
        _tf()
        import keras  # noqa: PLC0415

        return keras.models.load_model(path, custom_objects=dict(custom_objects or {}), compile=False)

    def _export_keras(self, model: Any) -> Path:
        """Write an in-memory model to a temporary SavedModel directory (removed with self)."""
        tf = _tf()
        tmp = Path(tempfile.mkdtemp(prefix="funnel-tf-"))
        weakref.finalize(self, shutil.rmtree, tmp, ignore_errors=True)
        target = tmp / ARTIFACT_NAME
        if hasattr(model, "export"):  # Keras 3 (and tf_keras) models
            try:
                model.export(str(target), verbose=False)
            except TypeError:  # older Keras: no verbose argument
                model.export(str(target))
        elif isinstance(model, tf.Module):
            tf.saved_model.save(model, str(target))
        else:
            raise ArtifactError(
                f"PredictTensorflow: expected a SavedModel directory, a .keras file or a Keras model; "
                f"got {type(model).__name__}"
            )
        return target

    def _load(self, path: Path) -> None:
        tf = _tf()
        configure_tensorflow(self.intra_op_threads, self.inter_op_threads)
        if not (path / "saved_model.pb").is_file():
            raise ArtifactError(
                f"PredictTensorflow: {path} is not a SavedModel directory (no saved_model.pb); "
                "write one with Keras model.export(dir) or tf.saved_model.save"
            )
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise ArtifactError(f"PredictTensorflow: loading the SavedModel at {path} failed: {exc}") from exc
        fn, inputs, outputs = _signature_specs(loaded, self.signature, str(path))
        if getattr(self, "inputs", None) is not None and (inputs, outputs) != (self.inputs, self.outputs):
            raise ArtifactError(
                f"PredictTensorflow: the SavedModel at {path} has signature {self.signature!r} with "
                f"inputs {inputs} and outputs {outputs}, but the graph was built for inputs "
                f"{self.inputs} and outputs {self.outputs}; export the graph again"
            )
        self.inputs, self.outputs = inputs, outputs
        self._loaded, self._fn, self._source = loaded, fn, path
        self._plan = [
            (s["name"], tuple(s["shape"][1:]), np.dtype(object if s["dtype"] == "str" else s["dtype"]))
            for s in inputs
        ]
        self._squeeze = [(s["name"], len(s["shape"]) == 2 and s["shape"][1] == 1) for s in outputs]

    # -- schema -----------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """The signature's input names (the columns this operator reads)."""
        return [s["name"] for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        """The signature's output names (the columns this operator returns)."""
        return [s["name"] for s in self.outputs]

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        for spec in self.inputs:
            name, want = spec["name"], spec["dtype"]
            (col,) = self.require(input_schema, [name])
            self._check_input(col, want, tuple(spec["shape"][1:]))
        return Schema(
            ColumnSchema(s["name"], s["dtype"], dims=_output_dims(s["shape"]), is_list=False)
            for s in self.outputs
        )

    def _check_input(self, col: ColumnSchema, want: str, dims: tuple[Any, ...]) -> None:
        where = f"{self.label}: input column {col.name!r}"
        if col.is_ragged:
            raise SchemaError(
                f"{where} is a list column {col!r}; the signature {self.signature!r} takes a dense "
                f"tensor of per-row shape {dims}. Run it per candidate after UnrollFeatures (select "
                "only candidate-aligned columns as its input) or pad the lists upstream."
            )
        if col.dtype != want:
            # integer ids reach the model in the dtype it declares (int64 → int32 included): the
            # values are range-checked at run time (funnel.casting), never wrapped
            ok = want != "str" and col.dtype != "str" and check_castable(col.numpy_dtype, np.dtype(want))
            if not ok:
                raise SchemaError(
                    f"{where} has dtype {col.dtype} but signature {self.signature!r} takes {want}; "
                    f"cast it upstream to {want} (funnel.ops.Cast({{{col.name!r}: {want!r}}}))"
                )
        have = tuple(col.dims)
        if _is_scalar_dims(dims) and _is_scalar_dims(have):
            return
        if len(have) != len(dims) or any(w is not None and w != h for w, h in zip(dims, have, strict=True)):
            raise SchemaError(
                f"{where} has per-row shape {have} but signature {self.signature!r} takes {dims}; "
                "reshape it upstream"
            )

    # -- running ------------------------------------------------------------------------
    def transform(self, table: Table) -> Table:
        if self._fn is None:
            raise ArtifactError(f"{self.label}: no model loaded; call load_artifacts(directory) first")
        rows = table.num_rows
        if rows == 0:
            return Table(
                {
                    s["name"]: np.zeros(
                        (0, *_output_dims(s["shape"])), dtype=object if s["dtype"] == "str" else s["dtype"]
                    )
                    for s in self.outputs
                },
                num_rows=0,
            )
        feeds: dict[str, Any] = {}
        for name, dims, dtype in self._plan:
            col = table[name]
            if isinstance(col, Ragged):
                raise SchemaError(
                    f"{self.label}: input column {name!r} is a list column; expected one value per row"
                )
            arr = to_numpy(col)
            if dims == (1,) and arr.ndim == 1:
                arr = arr[:, None]
            elif dims == () and arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.dtype != dtype and dtype.kind != "O":
                arr = cast_lossless(arr, dtype, column=name, where=f"{self.label} (signature {self.signature!r})")
            feeds[name] = arr
        result = self._fn(**feeds)
        out: dict[str, Any] = {}
        for name, squeeze in self._squeeze:
            value = result[name].numpy()
            out[name] = value.reshape(value.shape[0]) if squeeze else value
        return Table(out, num_rows=rows)

    # -- config and artifacts ---------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PredictTensorflow:
        op = cls.__new__(cls)
        op.signature = config.get("signature", "serving_default")
        op.inputs = [dict(s) for s in config["inputs"]]
        op.outputs = [dict(s) for s in config["outputs"]]
        op.intra_op_threads = config.get("intra_op_threads")
        op.inter_op_threads = config.get("inter_op_threads")
        op._loaded = op._fn = op._source = None
        return op

    def _copy_model(self, target: Path) -> None:
        if self._source is None:
            raise ArtifactError(f"{self.label}: no model loaded, nothing to save; call load_artifacts first")
        if target.resolve() == self._source.resolve():
            return
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(self._source, target)

    def save_artifacts(self, directory: Path) -> None:
        """Copy the SavedModel to ``directory/model.savedmodel``."""
        self._copy_model(Path(directory) / ARTIFACT_NAME)

    def load_artifacts(self, directory: Path) -> None:
        """Load ``directory/model.savedmodel`` once and keep its signature's concrete function."""
        path = Path(directory) / ARTIFACT_NAME
        if not path.is_dir():
            raise ArtifactError(
                f"{self.label}: {path} not found; the graph's artifacts are incomplete (save it again)"
            )
        self._load(path)

    def native_triton_model(self) -> NativeTritonModel:
        """Triton's TensorFlow backend serves the SavedModel as it is (tensor name = column name)."""
        return NativeTritonModel(
            platform="tensorflow_savedmodel",
            backend="tensorflow",
            artifact=ARTIFACT_NAME,
            inputs={s["name"]: s["name"] for s in self.inputs},
            outputs={s["name"]: s["name"] for s in self.outputs},
        )

    def write_native_model(self, version_dir: Path) -> None:
        """Write ``version_dir/model.savedmodel`` for Triton's ``tensorflow_savedmodel`` platform.

        Its ``serving_default`` signature takes and returns funnel's per-row shapes (what
        the exporter's config declares): a scalar-per-row input is ``(B,)`` and a ``(B, 1)``
        output comes back as ``(B,)``. When the model's own signature already has those
        shapes it is copied as it is; otherwise a thin wrapper SavedModel that reshapes
        around the original signature (same variables) is written.
        """
        version_dir = Path(version_dir)
        version_dir.mkdir(parents=True, exist_ok=True)
        target = version_dir / ARTIFACT_NAME
        wrap_in = any(dims == (1,) for _, dims, _ in self._plan)
        wrap_out = any(squeeze for _, squeeze in self._squeeze)
        if not (wrap_in or wrap_out or self.signature != "serving_default"):
            self._copy_model(target)
            return
        if self._fn is None:
            raise ArtifactError(f"{self.label}: no model loaded, nothing to write; call load_artifacts first")
        tf = _tf()
        plan, squeeze, fn = self._plan, self._squeeze, self._fn
        specs = [
            tf.TensorSpec(
                [None, *(() if dims == (1,) else dims)],
                tf.string if dt.kind == "O" else tf.as_dtype(dt),
                name=name,
            )
            for name, dims, dt in plan
        ]

        def serve(*args: Any) -> dict[str, Any]:
            feeds = {
                name: tf.reshape(a, [-1, 1]) if dims == (1,) else a
                for (name, dims, _), a in zip(plan, args, strict=True)
            }
            result = fn(**feeds)
            return {name: tf.reshape(result[name], [-1]) if sq else result[name] for name, sq in squeeze}

        module = tf.Module()
        module.model = self._loaded  # tracks the original variables
        module.serve = tf.function(serve, input_signature=specs)
        if target.exists():
            shutil.rmtree(target)
        tf.saved_model.save(
            module, str(target), signatures={"serving_default": module.serve.get_concrete_function()}
        )
