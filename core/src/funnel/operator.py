"""The operator protocol every graph step implements, and the composition it takes part in.

``Operator`` (built-ins, plugins, user code), ``Dependency`` (another branch an operator
reads) and ``Node`` (what ``>>``, ``+``, ``-`` and ``[cols]`` build) live together because
``columns >> operator`` needs both sides. Binding a composed graph is :mod:`funnel.graph`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from funnel.errors import SchemaError
from funnel.schema import ColumnSchema, Schema
from funnel.selector import ColumnSelector
from funnel.table import Table

__all__ = ["Operator", "NativeTritonModel", "Dependency", "Node", "set_callable_adapter"]


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
    #: The lifting rule (docs/architecture.md): the op maps each row independently. Bound over
    #: inputs that are all ragged lists it runs on the flattened candidate rows, outputs
    #: regrouped; over scalars it runs as is; a mix is a SchemaError at bind time.
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
        return Node.coerce(other) >> self

    def dependencies(self) -> dict[str, Dependency]:
        """Other graph branches this operator reads, by attribute name.

        The default finds every attribute holding a :class:`Dependency`.
        """
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


_ids = itertools.count()

#: at most one factory turning a plain function into an operator (``node >> function``)
_CALLABLE_ADAPTER: list[Any] = []


def set_callable_adapter(factory: Any) -> None:
    """Let ``node >> function`` build ``factory(function)`` (an Operator).

    funnel-workflow registers its ``LambdaOp`` here when imported, as NVTabular users write
    ``col >> (lambda col: col + 1)``. Without an adapter, ``>>`` takes operators only.
    """
    _CALLABLE_ADAPTER[:] = [factory]


class Dependency:
    """A reference, held by an operator, to columns produced by another graph branch.

    Built from a :class:`Node` (``ranking["output_1"]``), a ColumnSelector (columns of the
    request), or plain column name(s) (columns already among the operator's upstream
    columns). A node or selector adds its columns to the operator's input. ``columns`` is filled in when
    the graph is bound (or immediately, when names are known).
    """

    __slots__ = ("node", "columns")

    def __init__(self, source: Any) -> None:
        self.node: Node | None = None
        self.columns: list[str] | None = None
        if isinstance(source, Dependency):
            self.node, self.columns = source.node, source.columns
        elif isinstance(source, Node):
            self.node = source
            if source.kind == "select":
                self.columns = list(source.selector.names)
        elif isinstance(source, ColumnSelector):
            # a selector (like a selection node without parent) reads from the request
            self.node = Node("select", selector=source)
            self.columns = list(source.names) or None
        elif isinstance(source, str):
            self.columns = [source]
        elif isinstance(source, (list, tuple)) and all(isinstance(s, str) for s in source):
            self.columns = list(source)
        elif source is None:
            self.columns = []
        else:
            raise SchemaError(
                f"a dependency must be a graph node, a ColumnSelector or column name(s); got {type(source).__name__}"
            )

    @property
    def column(self) -> str:
        """The single column name (for dependencies that name exactly one column)."""
        if not self.columns or len(self.columns) != 1:
            raise SchemaError(f"expected exactly one dependency column, got {self.columns}")
        return self.columns[0]

    def __repr__(self) -> str:
        return f"Dependency({self.columns if self.columns is not None else self.node!r})"


class Node:
    """A step of the graph. Build nodes with ``>>``, ``+``, ``-`` and ``[cols]``.

    kinds: ``select`` (columns of the parent, or of the request when it has no parent),
    ``op`` (an operator applied to the parent), ``concat``, ``drop``.
    """

    __slots__ = ("id", "kind", "op", "parents", "selector")

    def __init__(
        self,
        kind: str,
        parents: Iterable[Node] = (),
        op: Operator | None = None,
        selector: ColumnSelector | None = None,
    ) -> None:
        self.id = next(_ids)
        self.kind = kind
        self.op = op
        self.parents = list(parents)
        self.selector = selector

    # -- construction -------------------------------------------------------------------
    @classmethod
    def coerce(cls, value: Any) -> Node:
        """Turn a node, selector, name or list of names into a node."""
        if isinstance(value, Node):
            return value
        if isinstance(value, ColumnSelector):
            return cls("select", selector=value)
        if isinstance(value, str):
            return cls("select", selector=ColumnSelector([value]))
        if isinstance(value, (list, tuple)):
            return cls("select", selector=ColumnSelector(list(value)))
        raise SchemaError(
            f"cannot use {type(value).__name__} in a graph; use a node, a ColumnSelector or a list of column names"
        )

    def __rshift__(self, op: Any) -> Node:
        if isinstance(op, type) and issubclass(op, Operator):
            raise SchemaError(f"'>> {op.__name__}' needs an instance: write '>> {op.__name__}(...)'")
        if not isinstance(op, Operator) and callable(op) and _CALLABLE_ADAPTER:
            op = _CALLABLE_ADAPTER[0](op)  # `node >> function` (funnel-workflow's LambdaOp)
        if not isinstance(op, Operator):
            hint = (
                "; `node >> function` needs a plugin that turns functions into operators "
                "(import funnel_workflow, whose LambdaOp does)"
                if callable(op)
                else ""
            )
            raise SchemaError(f"'>>' takes an Operator instance, got {type(op).__name__}{hint}")
        deps = [d.node for d in op.dependencies().values() if d.node is not None]
        return Node("op", [self, *deps], op=op)

    def __rrshift__(self, other: Any) -> Node:
        return Node.coerce(other) >> self  # type: ignore[operator]

    def __add__(self, other: Any) -> Node:
        return Node("concat", [self, Node.coerce(other)])

    def __radd__(self, other: Any) -> Node:
        return Node("concat", [Node.coerce(other), self])

    def __sub__(self, other: Any) -> Node:
        if isinstance(other, Node):
            return Node("drop", [self, other])
        names = [other] if isinstance(other, str) else list(other)
        return Node("drop", [self], selector=ColumnSelector(names))

    def __getitem__(self, cols: str | Iterable[str]) -> Node:
        names = [cols] if isinstance(cols, str) else list(cols)
        return Node("select", [self], selector=ColumnSelector(names))

    @property
    def label(self) -> str:
        """A short description for errors and pictures."""
        if self.kind == "op" and self.op is not None:
            return self.op.label
        if self.kind == "select" and self.selector is not None:
            return f"select{list(self.selector.names)}"
        return self.kind

    @property
    def upstream(self) -> Node | None:
        """For op nodes, the node whose columns the operator transforms."""
        return self.parents[0] if self.parents else None

    def __repr__(self) -> str:
        return f"<Node {self.id} {self.label}>"
