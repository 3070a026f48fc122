"""QueryFeast: batched Feast online-store lookups for one id or a list of ids per request row."""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import numpy as np
from funnel.errors import ArtifactError, SchemaError
from funnel.operator import Operator
from funnel.schema import ColumnSchema, Schema, Tags
from funnel.table import Ragged, Table, to_numpy

from funnel_feast.cache import FeatureCache

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = ["QueryFeast", "REPO_PATH_ENV", "feast_dtype"]

#: Environment variable that replaces the stored feature-repository path when the store is
#: (re)built. ``FUNNEL_FEAST_REPO_PATH__<VIEW>`` (view name upper-cased, other characters
#: than letters and digits as ``_``) overrides it for one feature view.
REPO_PATH_ENV = "FUNNEL_FEAST_REPO_PATH"

_SCALAR_TYPES = {
    "INT32": "int32",
    "INT64": "int64",
    "FLOAT": "float32",
    "DOUBLE": "float64",
    "BOOL": "bool",
    "STRING": "str",
}
_LIST_PREFIX = "list<"
_DEFAULTS: dict[str, Any] = {"str": "", "bool": False}


def feast_dtype(value_type: Any) -> str:
    """funnel's dtype spec for a Feast ``ValueType``: ``"int64"``, ``"str"``, ``"list<float32>"``.

    Raises SchemaError for types funnel does not serve (bytes, timestamps, maps, ...).
    """
    name = getattr(value_type, "name", str(value_type))
    if name in _SCALAR_TYPES:
        return _SCALAR_TYPES[name]
    if name.endswith("_LIST") and name[: -len("_LIST")] in _SCALAR_TYPES:
        return f"{_LIST_PREFIX}{_SCALAR_TYPES[name[: -len('_LIST')]]}>"
    raise SchemaError(
        f"Feast value type {name} is not supported by QueryFeast (supported: int32, int64, float, "
        "double, bool, string and lists of them); leave that feature out with features=[...]"
    )


def _parse_spec(spec: str) -> tuple[str, bool]:
    """``"list<int64>"`` → ``("int64", True)``; ``"float32"`` → ``("float32", False)``."""
    if spec.startswith(_LIST_PREFIX) and spec.endswith(">"):
        return ColumnSchema("x", spec[len(_LIST_PREFIX) : -1]).dtype, True
    return ColumnSchema("x", spec).dtype, False


def _env_var_for_view(view: str) -> str:
    return f"{REPO_PATH_ENV}__{re.sub(r'[^A-Za-z0-9]', '_', view).upper()}"


#: one FeatureStore per feature_store.yaml per process. Feast 0.67 keeps ONE global
#: feature-resolution cache, keyed by the registry's timestamp: two stores in a process
#: (a user and an item QueryFeast) evicted each other's entry on every call, re-parsing the
#: registry protos each time (about 1 ms per lookup, measured by benchmarks/multistage.py).
_STORES: dict[str, FeatureStore] = {}
#: guards _STORES: operators of several threads (Triton instances, a thread pool) open stores
#: concurrently; an unlocked check-then-set built two stores for one repository
_STORES_LOCK = threading.Lock()


def _open_store(path: str) -> FeatureStore:
    from feast import FeatureStore  # noqa: PLC0415 - feast is heavy; import on use

    # resolved once: Feast joins the relative paths inside the repository (sqlite file, registry)
    # to repo_path when it connects, so a relative one broke the shared store after a chdir
    p = Path(path).resolve()
    yaml = p if p.is_file() else p / "feature_store.yaml"
    if not yaml.is_file():
        raise FileNotFoundError(f"{yaml} does not exist")
    key = str(yaml)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = FeatureStore(repo_path=str(yaml.parent), fs_yaml_file=yaml)
    return store


class QueryFeast(Operator):
    """Look up the features of a Feast feature view for the ids in ``column``.

    ``column`` holds one id per request row (``user_id``, B rows → B-row outputs, list
    features as one list per row) or a list of ids per row (``candidate_ids``, a
    :class:`~funnel.table.Ragged` or dense ``(B, k)`` column → every output is ``Ragged``
    with the *same offsets* as the ids, ready for ``UnrollFeatures``). Each batch makes one
    ``get_online_features`` call for the distinct ids of the whole batch.

    Output names: ``<output_prefix>_<feature>``, or the feature name when there is no prefix
    or it already starts with ``<output_prefix>_`` (so ``item_id`` stays ``item_id`` with
    prefix ``item``). ``include_id`` adds the ids under the entity join key's (prefixed) name.
    ``include_found`` adds a bool column ``<prefix>_found`` (``<view>_found`` without a
    prefix): False where the store has no row for the id; such ids get the defaults 0, 0.0,
    False, ``""`` and the empty list.

    ``store`` is a ``feast.FeatureStore`` or the path of a feature repository (the directory
    holding ``feature_store.yaml``, or that file). Only the path is exported; the store is
    rebuilt at load, from ``$FUNNEL_FEAST_REPO_PATH__<VIEW>`` or ``$FUNNEL_FEAST_REPO_PATH``
    when set. Nothing is materialized or written by this operator.

    ``cache_size > 0`` turns on an in-process cache of up to that many ids per operator,
    each kept ``cache_ttl`` seconds (for views that change rarely, e.g. item features).
    """

    type_name = "feast.QueryFeast"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """What ``to_config`` writes; checked strictly (every key, no defaults) when an export loads."""

        repo_path: str
        view: str
        column: str
        entity: str
        entity_dtype: str
        features: list[tuple[str, str]]
        output_prefix: str | None
        include_id: bool
        include_found: bool
        cache_size: int
        cache_ttl: float
    #: config keys the serving environment overrides (funnel_scale.storage accepts these absolute paths)
    config_env_overrides: ClassVar[dict[str, tuple[str, ...]]] = {
        "repo_path": (REPO_PATH_ENV, f"{REPO_PATH_ENV}__<VIEW>"),
    }

    def __init__(
        self,
        store: FeatureStore | str | Path,
        view: str,
        column: str,
        entity: str,
        features: Mapping[str, str] | Sequence[tuple[str, str]],
        entity_dtype: str = "int64",
        output_prefix: str | None = None,
        include_id: bool = False,
        include_found: bool = True,
        cache_size: int = 0,
        cache_ttl: float = 300.0,
    ) -> None:
        """Build from explicit settings (no registry read, no store contact).

        ``entity`` is the view's join key; ``features`` maps feature name → dtype spec
        (``"int32"``, ``"int64"``, ``"float32"``, ``"float64"``, ``"bool"``, ``"str"`` or
        ``"list<dtype>"``), in output order; ``entity_dtype`` is ``"int64"``/``"int32"``/``"str"``.
        """
        if isinstance(store, (str, Path)):
            self.repo_path = str(Path(store).resolve())
            self._store: FeatureStore | None = None
        else:
            repo = getattr(store, "repo_path", None)
            if repo is None:
                raise SchemaError(
                    "QueryFeast: the FeatureStore has no repo_path; build it with "
                    "FeatureStore(repo_path=...) or pass the repository path"
                )
            self.repo_path = str(Path(repo).resolve())
            self._store = store
        if not features:
            raise SchemaError(f"QueryFeast({view}): no features to look up; give at least one")
        self.view = view
        self.column = column
        self.entity = entity
        self.entity_dtype = ColumnSchema(entity, entity_dtype).dtype
        self.features: dict[str, str] = {}
        pairs = features.items() if isinstance(features, Mapping) else features
        for name, spec in pairs:
            dtype, is_list = _parse_spec(spec)
            self.features[name] = f"{_LIST_PREFIX}{dtype}>" if is_list else dtype
        self.output_prefix = output_prefix or None
        self.include_id = bool(include_id)
        self.include_found = bool(include_found)
        if isinstance(cache_size, bool) or not isinstance(cache_size, (int, np.integer)) or cache_size < 0:
            # 2.7 used to become 2, a negative size silently no cache
            raise SchemaError(
                f"QueryFeast({view}): cache_size must be a whole number of ids >= 0 (0: no cache), got {cache_size!r}"
            )
        self.cache_size = int(cache_size)
        self.cache_ttl = float(cache_ttl)
        if self.cache_size and not (self.cache_ttl > 0 and np.isfinite(self.cache_ttl)):
            raise SchemaError(
                f"QueryFeast({view}): cache_ttl must be a positive, finite number of seconds with "
                f"cache_size={self.cache_size}, got {cache_ttl!r}"
            )
        self._cache = FeatureCache(self.cache_size, self.cache_ttl) if self.cache_size > 0 else None
        self._lock = threading.Lock()
        self._parsed = {name: _parse_spec(spec) for name, spec in self.features.items()}
        self._refs = [f"{view}:{f}" for f in self.features]
        names = self.output_names()
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise SchemaError(
                f"QueryFeast({view}): output columns {sorted(dupes)} collide; set output_prefix"
            )

    # -- construction from a registry ------------------------------------------------------
    @classmethod
    def from_feature_view(
        cls,
        store: FeatureStore | str | Path,
        view: str,
        column: str,
        output_prefix: str | None = None,
        include_id: bool = False,
        *,
        features: Sequence[str] | None = None,
        include_found: bool = True,
        cache_size: int = 0,
        cache_ttl: float = 300.0,
    ) -> QueryFeast:
        """Read the view's entity and feature types from the store's registry (no writes).

        ``features`` picks a subset of the view's features (all of them by default).
        """
        fs = _open_store(str(store)) if isinstance(store, (str, Path)) else store
        fv = fs.get_feature_view(view)
        keys = list(fv.entity_columns)
        if len(keys) != 1:
            raise SchemaError(
                f"QueryFeast: feature view {view!r} has join keys {[k.name for k in keys]}; "
                "only views with exactly one entity join key are supported"
            )
        key = keys[0]
        entity_dtype = feast_dtype(key.dtype.to_value_type())
        if entity_dtype not in ("int32", "int64", "str"):
            raise SchemaError(
                f"QueryFeast: entity {key.name!r} of view {view!r} must be an int or string key"
            )
        available = {f.name: f for f in fv.features}
        wanted = list(features) if features is not None else list(available)
        unknown = [f for f in wanted if f not in available]
        if unknown:
            raise SchemaError(
                f"QueryFeast: view {view!r} has no feature(s) {unknown}; it has {list(available)}"
            )
        specs = {name: feast_dtype(available[name].dtype.to_value_type()) for name in wanted}
        return cls(
            fs,
            view,
            column,
            entity=key.name,
            features=specs,
            entity_dtype=entity_dtype,
            output_prefix=output_prefix,
            include_id=include_id,
            include_found=include_found,
            cache_size=cache_size,
            cache_ttl=cache_ttl,
        )

    @property
    def label(self) -> str:
        return f"QueryFeast({self.view})"

    # -- naming -------------------------------------------------------------------------------
    def _out(self, name: str) -> str:
        prefix = self.output_prefix
        if not prefix or name.startswith(f"{prefix}_"):
            return name
        return f"{prefix}_{name}"

    @property
    def id_column(self) -> str:
        """Name of the ids column added by ``include_id``."""
        return self._out(self.entity)

    @property
    def found_column(self) -> str:
        """Name of the bool column added by ``include_found``."""
        return f"{self.output_prefix}_found" if self.output_prefix else f"{self.view}_found"

    def output_names(self) -> list[str]:
        """Output column names, in order."""
        names = [self.id_column] if self.include_id else []
        names += [self._out(f) for f in self.features]
        if self.include_found:
            names.append(self.found_column)
        return names

    # -- protocol ---------------------------------------------------------------------------
    def compute_output_schema(self, input_schema: Schema) -> Schema:
        kinds = "O" if self.entity_dtype == "str" else "iu"
        (col,) = self.require(input_schema, [self.column], dtype_kinds=kinds)
        per_list = len(col.dims) > 0  # a (B, k) id column is a fixed-length list per row
        if len(col.dims) > 1:
            raise SchemaError(
                f"{self.label}: column {self.column!r} must hold one id or one list of ids per row"
            )
        out: list[ColumnSchema] = []
        if self.include_id:
            out.append(ColumnSchema(self.id_column, col.dtype, tags=[Tags.ID]))
        for name, spec in self.features.items():
            dtype, is_list = _parse_spec(spec)
            if is_list and per_list:
                raise SchemaError(
                    f"{self.label}: feature {name!r} is a list feature and {self.column!r} holds a list of "
                    "ids per row; a list per candidate (list of lists) is not supported. Leave it out "
                    "with features=[...] or look it up per candidate row after UnrollFeatures"
                )
            out.append(ColumnSchema(self._out(name), dtype, dims=(None,) if is_list else ()))
        if self.include_found:
            out.append(ColumnSchema(self.found_column, "bool"))
        if per_list:
            out = [c.as_list() for c in out]
        return Schema(out)

    def transform(self, table: Table) -> Table:
        col = table[self.column]
        offsets = None
        if isinstance(col, Ragged):
            ids, offsets = to_numpy(col.values), col.offsets
        else:
            ids = to_numpy(col)
            if ids.ndim == 2:
                ragged = Ragged.from_dense(ids)
                ids, offsets = ragged.values, ragged.offsets
            elif ids.ndim != 1:
                raise SchemaError(
                    f"{self.label}: column {self.column!r} has shape {ids.shape}; expected (B,) or (B, k)"
                )
        if offsets is not None and to_numpy(offsets)[-1] != ids.shape[0]:
            raise SchemaError(f"{self.label}: ragged column {self.column!r} has inconsistent offsets")
        unique, inverse = _dedupe(ids)
        columns, found = self._lookup(unique.tolist())
        out: dict[str, Any] = {}
        if self.include_id:
            out[self.id_column] = ids
        for (name, (dtype, is_list)), values in zip(self._parsed.items(), columns, strict=True):
            if is_list:
                lists = _ragged(values, dtype)
                out[self._out(name)] = lists if inverse is None else lists.take_rows(inverse)
            else:
                dense = _dense(values, dtype)
                out[self._out(name)] = dense if inverse is None else dense[inverse]
        if self.include_found:
            out[self.found_column] = found if inverse is None else found[inverse]
        if offsets is not None:
            out = {k: Ragged(v, offsets, validate=False) for k, v in out.items()}
        return Table(out, num_rows=table.num_rows)

    # -- fetching ---------------------------------------------------------------------------
    @property
    def store(self) -> FeatureStore:
        """The live FeatureStore, built from the (possibly overridden) repo path on first use."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._build_store()
        return self._store

    def resolved_repo_path(self) -> tuple[str, str]:
        """``(path, where it came from)``: per-view env var, global env var, or the config."""
        per_view = _env_var_for_view(self.view)
        for var in (per_view, REPO_PATH_ENV):
            value = os.environ.get(var)
            if value:
                return value, f"${var}"
        return self.repo_path, "the exported config"

    def _build_store(self) -> FeatureStore:
        path, source = self.resolved_repo_path()
        try:
            return _open_store(path)
        except Exception as exc:
            raise ArtifactError(
                f"{self.label}: cannot open the Feast feature repository {path!r} (from {source}): "
                f"{type(exc).__name__}: {exc}. Point ${REPO_PATH_ENV} (or ${_env_var_for_view(self.view)}) "
                "at the directory that holds feature_store.yaml"
            ) from exc

    def _fetch(self, ids: list[Any]) -> list[list[Any]]:
        """One ``get_online_features`` call; per feature, a list of values (None = missing)."""
        if not ids:
            return [[] for _ in self.features]
        response = self.store.get_online_features(features=self._refs, entity_rows={self.entity: ids})
        data = response.to_dict()
        return [data[name] for name in self.features]

    def _lookup(self, ids: list[Any]) -> tuple[list[list[Any]], np.ndarray]:
        cache = self._cache
        if cache is None:
            columns = self._fetch(ids)
        else:
            cached, missing = cache.get_many(ids)
            fetched = self._fetch(missing)
            rows = list(zip(*fetched, strict=True)) if missing else []
            cache.put_many(
                (key, None if all(v is None for v in row) else row)
                for key, row in zip(missing, rows, strict=True)
            )
            cached.update(zip(missing, rows, strict=True))
            empty = (None,) * len(self.features)
            ordered = [cached[k] or empty for k in ids]
            columns = (
                [list(c) for c in zip(*ordered, strict=True)] if ordered else [[] for _ in self.features]
            )
        found = np.zeros(len(ids), dtype=bool)
        for values in columns:
            found |= np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
        return columns, found

    # -- serialization ----------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {
            "repo_path": self.repo_path,
            "view": self.view,
            "column": self.column,
            "entity": self.entity,
            "entity_dtype": self.entity_dtype,
            # a list of [name, dtype] pairs: exports write JSON with sorted keys, order matters
            "features": [[name, spec] for name, spec in self.features.items()],
            "output_prefix": self.output_prefix,
            "include_id": self.include_id,
            "include_found": self.include_found,
            "cache_size": self.cache_size,
            "cache_ttl": self.cache_ttl,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> QueryFeast:
        cfg = dict(config)
        repo_path = cfg.pop("repo_path")
        return cls(repo_path, **cfg)

    def load_artifacts(self, directory: Path) -> None:
        """Rebuild the FeatureStore client (from the env var override when set)."""
        self._store = self._build_store()
        if self._cache is not None:
            self._cache.clear()


def _dedupe(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Distinct ids and the index of each input id among them (``None``: already distinct)."""
    if ids.shape[0] <= 1:
        return ids, None
    unique, inverse = np.unique(ids, return_inverse=True)
    if unique.shape[0] == ids.shape[0]:
        return ids, None  # no repeats: fetch in input order, nothing to scatter
    return unique, inverse.reshape(-1)


def _dense(values: list[Any], dtype: str) -> np.ndarray:
    if dtype == "str":
        return np.array(["" if v is None else v for v in values], dtype=object)
    default = _DEFAULTS.get(dtype, 0)
    return np.array([default if v is None else v for v in values], dtype=np.dtype(dtype))


def _ragged(values: list[Any], dtype: str) -> Ragged:
    rows = [() if v is None else v for v in values]
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    np_dtype = np.dtype(object) if dtype == "str" else np.dtype(dtype)
    flat = itertools.chain.from_iterable(rows)
    if np_dtype.kind == "O":
        data = np.array(list(flat), dtype=object)
    else:
        data = np.fromiter(flat, dtype=np_dtype, count=int(offsets[-1]))
    return Ragged(data, offsets, validate=False)
