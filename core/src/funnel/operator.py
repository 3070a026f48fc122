"""The operator protocol, and the composition it takes part in: ``Operator``, ``Dependency`` and ``Node``
live together because ``columns >> operator`` needs both sides. Binding a graph is :mod:`funnel.graph`."""

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
    """How an operator is served by a native Triton backend in ensemble mode (docs/serving.md):
    ``write_native_model`` writes ``artifact``; ``inputs``/``outputs`` map columns → tensor names."""

    platform: str | None = None  # e.g. "tensorflow_savedmodel"
    backend: str | None = None  # e.g. "tensorflow", "pytorch"
    artifact: str = "model"
    inputs: dict[str, str] = {}
    outputs: dict[str, str] = {}
    parameters: dict[str, str] = {}


class _OperatorMeta(type):
    def __rrshift__(cls, other: Any) -> Any:
        raise SchemaError(f"'>> {cls.__name__}' needs an operator instance: write '>> {cls.__name__}(...)'")


#: numpy kind codes → the words :meth:`Operator.require` errors use
_KIND_WORDS = {"i": "integer", "u": "unsigned integer", "f": "float", "b": "bool", "O": "string"}


class Operator(metaclass=_OperatorMeta):
    """Base class of graph operators (docs/architecture.md, "The operator protocol"). A plugin's operator sets
    a stable ``type_name = "<namespace>.<Name>"``; other subclasses are addressed by ``module:QualName``."""

    type_name: ClassVar[str] = ""
    #: the op maps each row independently (the lifting rule, docs/architecture.md)
    rowwise: ClassVar[bool] = False
    #: the op may return another row count than it got (a serve-time Groupby: N interactions →
    #: B sessions): the executor skips its one-row-per-row check and the Triton runtime never
    #: merges the requests of a dynamic batch through it, so rows of requests never mix
    changes_rows: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("type_name"):
            cls.type_name = f"{cls.__module__}:{cls.__qualname__}"

    def __rrshift__(self, other: Any) -> Node:
        return Node.coerce(other) >> self

    def dependencies(self) -> dict[str, Dependency]:
        """Other graph branches this operator reads, by attribute name (default: every Dependency attribute)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, Dependency)}

    @property
    def label(self) -> str:
        """Short human name used in errors and graph pictures."""
        return type(self).__name__

    # -- the protocol -------------------------------------------------------------------
    def compute_output_schema(self, input_schema: Schema) -> Schema:
        """The output schema for ``input_schema`` (upstream + dependency columns); the default passes it
        through. Raise SchemaError (see :meth:`require`) for a missing or mistyped input."""
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
    def require(self, schema: Schema, columns: Iterable[str], dtype_kinds: str | None = None,
                list_column: bool | None = None) -> list[ColumnSchema]:
        """Check that ``columns`` exist in ``schema``, of numpy dtype kinds ``dtype_kinds`` (``"iu"``, ``"f"``,
        ``"b"``, ``"O"``: strings) and list-ness; a SchemaError names operator, column and available columns."""
        found: list[ColumnSchema] = []
        for name in columns:
            col = schema.get(name)
            if col is None:
                raise SchemaError(f"{self.label}: input column {name!r} is missing; available columns: "
                                  f"{schema.column_names}. Select it upstream or fix the column name.")
            if dtype_kinds is not None and col.numpy_dtype.kind not in dtype_kinds:
                kinds = " or ".join(_KIND_WORDS.get(k, k) for k in dtype_kinds)
                raise SchemaError(f"{self.label}: column {name!r} has dtype {col.dtype}, expected {kinds}. "
                                  "Cast it upstream.")
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
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"


_ids = itertools.count()

#: at most one factory turning a plain function into an operator (``node >> function``)
_CALLABLE_ADAPTER: list[Any] = []
_NO_ADAPTER = (
    "; `node >> function` needs a plugin that turns functions into operators (import funnel_workflow, whose "
    "LambdaOp does)"
)


def set_callable_adapter(factory: Any) -> None:
    """Let ``node >> function`` build ``factory(function)`` (an Operator): funnel-workflow registers
    its ``LambdaOp``, as NVTabular users write ``col >> (lambda col: col + 1)``."""
    _CALLABLE_ADAPTER[:] = [factory]


class Dependency:
    """Columns, held by an operator, of another graph branch (``ranking["output_1"]``), of the request (a
    ColumnSelector) or of its upstream (names); ``columns`` is resolved at binding (docs/architecture.md)."""

    __slots__ = ("node", "columns")

    def __init__(self, source: Any) -> None:
        self.node: Node | None = None
        self.columns: list[str] | None = None
        if isinstance(source, Dependency):
            self.node, self.columns = source.node, source.columns
        elif isinstance(source, Node):
            self.node = source
            if source.kind == "select":
                self.columns = list(source.selector.names)  # type: ignore[union-attr]
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
            raise SchemaError("a dependency must be a graph node, a ColumnSelector or column name(s); "
                              f"got {type(source).__name__}")

    @property
    def column(self) -> str:
        """The single column name (for dependencies that name exactly one column)."""
        if not self.columns or len(self.columns) != 1:
            raise SchemaError(f"expected exactly one dependency column, got {self.columns}")
        return self.columns[0]

    def __repr__(self) -> str:
        return f"Dependency({self.columns if self.columns is not None else self.node!r})"


class Node:
    """A step of the graph, built with ``>>``, ``+``, ``-`` and ``[cols]``: of kind ``select`` (columns of
    the parent, or of the request), ``op`` (an operator applied to the parent), ``concat`` or ``drop``."""

    __slots__ = ("id", "kind", "op", "parents", "selector")

    def __init__(self, kind: str, parents: Iterable[Node] = (), op: Operator | None = None,
                 selector: ColumnSelector | None = None) -> None:
        self.id, self.kind, self.op, self.parents, self.selector = next(_ids), kind, op, list(parents), selector

    @classmethod
    def coerce(cls, value: Any) -> Node:
        """Turn a node, selector, name or list of names into a node."""
        if isinstance(value, Node):
            return value
        if isinstance(value, ColumnSelector):
            return cls("select", selector=value)
        if isinstance(value, (str, list, tuple)):
            return cls("select", selector=ColumnSelector(value))
        raise SchemaError(f"cannot use {type(value).__name__} in a graph; use a node, a ColumnSelector or a list "
                          "of column names")

    def __rshift__(self, op: Any) -> Node:
        if isinstance(op, type) and issubclass(op, Operator):
            raise SchemaError(f"'>> {op.__name__}' needs an instance: write '>> {op.__name__}(...)'")
        if not isinstance(op, Operator) and callable(op) and _CALLABLE_ADAPTER:
            op = _CALLABLE_ADAPTER[0](op)  # `node >> function` (funnel-workflow's LambdaOp)
        if not isinstance(op, Operator):
            hint = _NO_ADAPTER if callable(op) else ""
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
        return Node("drop", [self], selector=ColumnSelector(other if isinstance(other, str) else list(other)))

    def __getitem__(self, cols: str | Iterable[str]) -> Node:
        return Node("select", [self], selector=ColumnSelector(cols if isinstance(cols, str) else list(cols)))

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
