"""The operator protocol every graph step implements (built-ins, plugins and user code)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from funnel.errors import SchemaError
from funnel.schema import ColumnSchema, Schema
from funnel.table import Table

if TYPE_CHECKING:
    from funnel.graph import Dependency, Node

__all__ = ["Operator", "NativeTritonModel"]


class NativeTritonModel(msgspec.Struct, kw_only=True):
    """How an operator is served by a native Triton backend in ensemble mode.

    ``write(version_dir)`` on the operator writes ``artifact`` (e.g. ``model.savedmodel``)
    inside the model version directory; the exporter writes ``config.pbtxt`` from the rest.
    ``inputs``/``outputs`` map funnel column names → the backend's tensor names.
    """

    platform: str | None = None  # e.g. "tensorflow_savedmodel"
    backend: str | None = None  # e.g. "tensorflow", "pytorch"
    artifact: str = "model"
    inputs: dict[str, str] = {}
    outputs: dict[str, str] = {}
    parameters: dict[str, str] = {}


def _type_name_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class _OperatorMeta(type):
    def __rrshift__(cls, other: Any) -> Any:
        raise SchemaError(f"'>> {cls.__name__}' needs an operator instance: write '>> {cls.__name__}(...)'")


class Operator(metaclass=_OperatorMeta):
    """Base class of graph operators.

    Subclasses override :meth:`compute_output_schema` and :meth:`transform`, and, when they
    have state, :meth:`to_config`/:meth:`from_config` and the artifact methods. Set
    ``type_name`` to a stable ``"<namespace>.<Name>"`` when the operator is registered by a
    plugin; unregistered subclasses are addressed by ``module:QualName``.
    """

    type_name: ClassVar[str] = ""
    #: The op maps each row independently; over candidate-aligned list columns it is run on
    #: the flattened candidate rows and its outputs are regrouped (docs/architecture.md).
    rowwise: ClassVar[bool] = False
    #: The op may return a different number of rows than it received (a serve-time Groupby:
    #: N raw interaction rows → B sessions). The executor then skips its one-row-per-row
    #: check, and the Triton runtime never merges requests of a dynamic batch through a graph
    #: holding such an op, so rows of different requests are never combined.
    changes_rows: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type_name" not in cls.__dict__ or not cls.__dict__["type_name"]:
            cls.type_name = _type_name_of(cls)

    # -- graph composition ----------------------------------------------------------------
    def __rrshift__(self, other: Any) -> Node:
        from funnel.graph import Node  # noqa: PLC0415 - graph imports operator

        return Node.coerce(other) >> self

    def dependencies(self) -> dict[str, Dependency]:
        """Other graph branches this operator reads, by attribute name.

        The default finds every attribute holding a :class:`funnel.graph.Dependency`.
        """
        from funnel.graph import Dependency  # noqa: PLC0415

        return {k: v for k, v in vars(self).items() if isinstance(v, Dependency)}

    @property
    def label(self) -> str:
        """Short human name used in errors and graph pictures."""
        return type(self).__name__

    # -- the protocol -------------------------------------------------------------------
    def compute_output_schema(self, input_schema: Schema) -> Schema:
        """The schema this operator outputs for ``input_schema`` (upstream + dependency columns).

        Raise :class:`funnel.errors.SchemaError` (see :meth:`require`) when an input is
        missing or has the wrong dtype. The default passes the input through unchanged.
        """
        return input_schema

    def transform(self, table: Table) -> Table:
        """Compute the output columns for a batch (a Table of request rows)."""
        raise NotImplementedError(f"{self.label} does not implement transform()")

    def to_config(self) -> dict[str, Any]:
        """Plain data (str/int/float/bool/list/dict) that :meth:`from_config` rebuilds from."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Operator:
        """Rebuild an operator from :meth:`to_config` output. Artifacts are loaded later."""
        return cls(**config)

    def save_artifacts(self, directory: Path) -> None:
        """Write files the operator needs (index, model) into ``directory`` (it exists)."""

    def load_artifacts(self, directory: Path) -> None:
        """Load what :meth:`save_artifacts` wrote; also (re)build live clients."""

    def native_triton_model(self) -> NativeTritonModel | None:
        """A native Triton backend for ensemble mode, or ``None`` for the Python runner."""
        return None

    def write_native_model(self, version_dir: Path) -> None:
        """Write the native backend's artifact into ``version_dir`` (ensemble mode only)."""
        raise NotImplementedError(f"{self.label} declares no native Triton model")

    # -- helpers for implementers -------------------------------------------------------
    def require(
        self,
        schema: Schema,
        columns: Iterable[str],
        dtype_kinds: str | None = None,
        list_column: bool | None = None,
    ) -> list[ColumnSchema]:
        """Check that ``columns`` exist in ``schema`` (and their dtype kind / list-ness).

        ``dtype_kinds`` is a string of numpy kind codes (``"iu"`` integers, ``"f"`` floats,
        ``"b"`` bool, ``"O"`` strings). Raises SchemaError naming operator, column and the
        available columns.
        """
        found: list[ColumnSchema] = []
        for name in columns:
            col = schema.get(name)
            if col is None:
                raise SchemaError(
                    f"{self.label}: input column {name!r} is missing; available columns: "
                    f"{schema.column_names}. Select it upstream or fix the column name."
                )
            if dtype_kinds is not None and col.numpy_dtype.kind not in dtype_kinds:
                raise SchemaError(
                    f"{self.label}: column {name!r} has dtype {col.dtype}, expected "
                    f"{_kind_words(dtype_kinds)}. Cast it upstream."
                )
            if list_column is not None and col.is_list != list_column:
                want = "a list column (one list per row)" if list_column else "a scalar column"
                raise SchemaError(f"{self.label}: column {name!r} must be {want}; got {col!r}")
            found.append(col)
        return found

    def __repr__(self) -> str:
        try:
            cfg = self.to_config()
        except Exception:  # noqa: BLE001 - repr must never fail
            cfg = {}
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
        return f"{type(self).__name__}({args})"


def _kind_words(kinds: str) -> str:
    words = {"i": "integer", "u": "unsigned integer", "f": "float", "b": "bool", "O": "string"}
    return " or ".join(words.get(k, k) for k in kinds)
