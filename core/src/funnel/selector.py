"""ColumnSelector: names (and tags) of columns to pick from a schema."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from funnel.errors import SchemaError
from funnel.schema import Schema, _tag_value

__all__ = ["ColumnSelector"]


class ColumnSelector:
    """Selects columns by name and/or tag, in the order given (``["a", "b"] >> op`` selects from the request)."""

    __slots__ = ("names", "tags")

    def __init__(self, names: str | Iterable[str] | None = None, tags: Iterable[Any] | None = None) -> None:
        names = [names] if isinstance(names, str) else list(names or [])
        for n in names:
            if not isinstance(n, str):
                raise SchemaError(f"ColumnSelector takes column names (str), got {n!r}")
        object.__setattr__(self, "names", tuple(dict.fromkeys(names)))
        object.__setattr__(self, "tags", tuple(_tag_value(t) for t in tags or []))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("ColumnSelector is immutable")

    def resolve(self, schema: Schema, where: str = "selection") -> Schema:
        """The selected columns of ``schema``; a missing name raises SchemaError."""
        missing = [n for n in self.names if n not in schema]
        if missing:
            raise SchemaError(f"{where}: column(s) {missing} not found; available columns: {schema.column_names}")
        cols = [schema[n] for n in self.names]
        if self.tags:
            cols += [c for c in schema.select_by_tag(self.tags) if c.name not in self.names]
        return Schema(cols)

    def __add__(self, other: ColumnSelector | Iterable[str]) -> ColumnSelector:
        other = other if isinstance(other, ColumnSelector) else ColumnSelector(list(other))
        return ColumnSelector(self.names + other.names, self.tags + other.tags)

    def __rshift__(self, other: Any) -> Any:
        if hasattr(type(other), "__rrshift__"):  # an Operator or a Node composes the two
            return NotImplemented
        raise SchemaError(
            f"'>>' takes an Operator instance, got {type(other).__name__}"
            + ("; `selector >> function` needs funnel_workflow's ColumnSelector" if callable(other) else "")
        )

    def __bool__(self) -> bool:
        return bool(self.names or self.tags)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColumnSelector) and (self.names, self.tags) == (other.names, other.tags)

    def __hash__(self) -> int:
        return hash((self.names, self.tags))

    def __repr__(self) -> str:
        tags = f", tags={list(self.tags)}" if self.tags else ""
        return f"ColumnSelector({list(self.names)}{tags})"
