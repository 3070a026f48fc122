"""Column and table schemas: immutable, value-equal, JSON round-trippable."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec
import numpy as np

from funnel.errors import SchemaError

__all__ = ["Tags", "ColumnSchema", "Schema", "normalize_dtype"]


class Tags(str, enum.Enum):
    """Well-known column tags. Any string is accepted as a tag; these are the shared ones."""

    USER = "user"
    ITEM = "item"
    ID = "id"
    USER_ID = "user_id"
    ITEM_ID = "item_id"
    CATEGORICAL = "categorical"
    CONTINUOUS = "continuous"
    LIST = "list"
    EMBEDDING = "embedding"
    TARGET = "target"
    CANDIDATES = "candidates"
    SCORE = "score"

    def __str__(self) -> str:  # so f"{Tags.USER}" == "user"
        return self.value


_STRING_NAMES = ("str", "string", "object", "bytes")
# the fields in their JSON order; name and dtype are always written, the others when set
_FIELDS = ("name", "dtype", "tags", "properties", "dims", "is_list", "is_ragged")


def normalize_dtype(dtype: Any) -> str:
    """Return funnel's canonical dtype name: a numpy dtype name (``"int32"``) or ``"str"``."""
    if dtype is None:
        raise SchemaError("dtype is required; give a numpy dtype such as np.int32 or 'float32'")
    if dtype is str or dtype is bytes or dtype is object or (isinstance(dtype, str) and dtype in _STRING_NAMES):
        return "str"
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        if isinstance(dtype, str):
            raise SchemaError(f"unknown dtype {dtype!r}; use a numpy dtype name such as 'int64'") from exc
        # torch/cupy dtypes expose names numpy understands ("float32", "int64", ...)
        name = getattr(dtype, "name", None)
        return normalize_dtype(name if isinstance(name, str) else str(dtype).replace("torch.", ""))
    return "str" if dt.kind in "USOT" else dt.name


def _tag_value(tag: Any) -> str:
    return tag.value if isinstance(tag, enum.Enum) else str(tag)


class ColumnSchema:
    """One column: name, dtype, tags, properties, per-row shape ``dims`` (fields: docs/reference/schema.md)."""

    __slots__ = _FIELDS

    def __init__(
        self, name: str, dtype: Any = "float32", tags: Iterable[Any] = (), properties: dict[str, Any] | None = None,
        dims: Sequence[int | None] | None = None, is_list: bool | None = None, is_ragged: bool | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise SchemaError(f"column name must be a non-empty string, got {name!r}")
        if dims is None:
            dims = (None,) if is_list or is_ragged else ()
        dims = tuple(None if d is None or d == -1 else int(d) for d in dims)
        tags = {_tag_value(t) for t in tags}
        if is_list is None:  # a first dimension of None, or a fixed one tagged "list"; never an embedding
            is_list = bool(dims) and not (properties or {}).get("embedding") and (dims[0] is None or "list" in tags)
        if is_ragged is None:
            is_ragged = bool(is_list) and len(dims) >= 1 and dims[0] is None
        if is_ragged and not is_list:
            raise SchemaError(f"column {name!r}: is_ragged=True requires is_list=True")
        values = (name, normalize_dtype(dtype), tuple(sorted(tags)), dict(properties or {}), dims)
        for field, value in zip(_FIELDS, (*values, bool(is_list), bool(is_ragged))):
            object.__setattr__(self, field, value)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("ColumnSchema is immutable; use with_name/with_dtype/with_tags/...")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColumnSchema) and all(getattr(self, f) == getattr(other, f) for f in _FIELDS)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in _FIELDS if f != "properties"))

    def _replace(self, **changes: Any) -> ColumnSchema:
        return ColumnSchema(**{**{f: getattr(self, f) for f in _FIELDS}, **changes})

    def with_name(self, name: str) -> ColumnSchema:
        """A copy with another name."""
        return self._replace(name=name)

    def with_dtype(self, dtype: Any) -> ColumnSchema:
        """A copy with another dtype."""
        return self._replace(dtype=dtype)

    def with_tags(self, tags: Iterable[Any]) -> ColumnSchema:
        """A copy with ``tags`` added to the existing ones."""
        return self._replace(tags=(*self.tags, *tags))

    def with_properties(self, properties: dict[str, Any]) -> ColumnSchema:
        """A copy with ``properties`` merged over the existing ones."""
        return self._replace(properties={**self.properties, **properties})

    def with_shape(self, dims: Sequence[int | None]) -> ColumnSchema:
        """A copy with another per-row shape; list flags are re-derived from it."""
        return self._replace(dims=tuple(dims), is_list=None, is_ragged=None)

    def as_list(self) -> ColumnSchema:
        """This column as a variable-length list of its values (one list per row)."""
        return self._replace(dims=(None, *self.dims), is_list=True, is_ragged=True)

    def element(self) -> ColumnSchema:
        """The schema of one element of a list column (the column itself if not a list)."""
        return self._replace(dims=self.dims[1:], is_list=None, is_ragged=None) if self.is_list else self

    @property
    def numpy_dtype(self) -> np.dtype:
        """The numpy dtype that holds this column's values (``object`` for strings)."""
        return np.dtype(object if self.dtype == "str" else self.dtype)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what the JSON holds); defaults are left out."""
        data = {f: getattr(self, f) for f in _FIELDS if getattr(self, f)}
        return {f: list(v) if isinstance(v, tuple) else msgspec.to_builtins(v) for f, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSchema:
        """Inverse of :meth:`to_dict`."""
        given = {f: data[f] for f in _FIELDS[1:] if f in data}
        return cls(data["name"], **{"dims": (), "is_list": False, "is_ragged": False, **given})

    def __repr__(self) -> str:
        extra = f", tags={list(self.tags)}" if self.tags else ""
        extra += f", dims={self.dims}" if self.dims else ""
        extra += (", ragged" if self.is_ragged else ", list") if self.is_list else ""
        return f"ColumnSchema({self.name!r}, {self.dtype}{extra})"


class Schema:
    """An ordered set of :class:`ColumnSchema`, addressed by name. Immutable."""

    __slots__ = ("_columns",)

    def __init__(self, columns: Iterable[ColumnSchema | str] = ()) -> None:
        cols: dict[str, ColumnSchema] = {}
        for col in columns:
            col = ColumnSchema(col) if isinstance(col, str) else col
            if not isinstance(col, ColumnSchema):
                raise SchemaError(f"Schema takes ColumnSchema objects or names, got {type(col).__name__}")
            if col.name in cols:
                raise SchemaError(f"duplicate column {col.name!r} in schema")
            cols[col.name] = col
        object.__setattr__(self, "_columns", cols)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Schema is immutable; use +, -, select_by_name or excluding_by_name")

    @property
    def column_names(self) -> list[str]:
        """Column names in order."""
        return list(self._columns)

    @property
    def column_schemas(self) -> dict[str, ColumnSchema]:
        """A copy of the name → ColumnSchema mapping."""
        return dict(self._columns)

    def __getitem__(self, name: str) -> ColumnSchema:
        if name in self._columns:
            return self._columns[name]
        raise SchemaError(f"column {name!r} is not in the schema; available: {self.column_names}")

    def get(self, name: str, default: ColumnSchema | None = None) -> ColumnSchema | None:
        """The column named ``name`` or ``default``."""
        return self._columns.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __iter__(self) -> Iterator[ColumnSchema]:
        return iter(self._columns.values())

    def __len__(self) -> int:
        return len(self._columns)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and list(self._columns.items()) == list(other._columns.items())

    def __hash__(self) -> int:
        return hash(tuple(self._columns))

    def __repr__(self) -> str:
        return f"Schema({list(self._columns.values())!r})"

    def select_by_name(self, names: str | Iterable[str]) -> Schema:
        """The named columns, in the order given. Missing names raise SchemaError."""
        return Schema([self[n] for n in ([names] if isinstance(names, str) else names)])

    def select_by_tag(self, tags: Any | Iterable[Any]) -> Schema:
        """Columns carrying any of ``tags``."""
        wanted = {_tag_value(t) for t in ([tags] if isinstance(tags, (str, enum.Enum)) else tags)}
        return Schema([c for c in self if wanted.intersection(c.tags)])

    def excluding_by_name(self, names: str | Iterable[str]) -> Schema:
        """All columns but the named ones (unknown names are ignored)."""
        drop = {names} if isinstance(names, str) else set(names)
        return Schema([c for c in self if c.name not in drop])

    def __add__(self, other: Schema) -> Schema:
        """Concatenate; a column present in both keeps ``other``'s definition."""
        if not isinstance(other, Schema):
            return NotImplemented
        return Schema({**self._columns, **other._columns}.values())

    def __sub__(self, other: Schema | Iterable[str]) -> Schema:
        return self.excluding_by_name(other.column_names if isinstance(other, Schema) else list(other))

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``{"columns": [...]}``."""
        return {"columns": [c.to_dict() for c in self]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """Inverse of :meth:`to_dict`."""
        return cls([ColumnSchema.from_dict(c) for c in data.get("columns", [])])

    def to_json(self, indent: int = 2) -> str:
        """Human-readable JSON."""
        return msgspec.json.format(msgspec.json.encode(self.to_dict()), indent=indent).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> Schema:
        """Read a schema written by :meth:`to_json`."""
        try:
            data = msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            raise SchemaError(f"not a funnel schema JSON document: {exc}") from exc
        return cls.from_dict(data)
