"""Build a real Feast feature repository from DataFrames: parquet sources, apply, materialize.

For tests, demos and getting started: ``build_feature_repo(path, {"user_features": ("user_id",
users_df)})`` writes ``feature_store.yaml`` and one parquet source per view, registers an
entity and a feature view per table (Feast types inferred from the DataFrame's dtypes) and
materializes everything into the online store. ``QueryFeast`` then serves from ``path``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from funnel.errors import SchemaError

__all__ = ["build_feature_repo", "SQLITE"]

#: the default online store: a sqlite file inside the repository
SQLITE = "  type: sqlite\n  path: data/online_store.db\n"


def _feast_type(name: str, series: Any) -> Any:
    """The Feast type of a DataFrame column (lists become ``Array`` of the element type)."""
    import numpy as np  # noqa: PLC0415
    from feast import types as ft  # noqa: PLC0415

    scalar = {"int32": ft.Int32, "int64": ft.Int64, "float32": ft.Float32, "float64": ft.Float64, "bool": ft.Bool}
    kind = str(series.dtype)
    if kind in scalar:
        return scalar[kind]
    if kind in ("object", "string", "str"):
        sample = next((v for v in series if v is not None), None)
        if isinstance(sample, str):
            return ft.String
        if isinstance(sample, (list, tuple, np.ndarray)):
            items = [x for v in series if v is not None for x in v][:1000]
            elem = np.asarray(items).dtype if items else np.dtype(np.int64)
            elem_name = {"int32": "int32", "int64": "int64", "float32": "float32", "float64": "float64",
                         "bool": "bool"}.get(elem.name, "str" if elem.kind in "US" else None)
            if elem_name is None:
                raise SchemaError(f"build_feature_repo: column {name!r} holds lists of {elem}; use numbers, bools or strings")
            return ft.Array(ft.String if elem_name == "str" else scalar[elem_name])
    raise SchemaError(
        f"build_feature_repo: column {name!r} has dtype {kind}; use int32/int64/float32/float64/bool, "
        "strings, or lists of those"
    )


def build_feature_repo(
    path: str | Path,
    tables: Mapping[str, tuple[str, Any]],
    project: str = "funnel",
    online_store: str = SQLITE,
    ttl: dt.timedelta = dt.timedelta(days=3650),
) -> Path:
    """Write, apply and materialize a Feast repository at ``path``; returns it as an absolute path.

    A relative ``path`` is resolved once, against the current directory. The parquet sources
    are registered relative to the repository (``data/<view>.parquet``), like its registry
    and sqlite store, so the directory can be moved or copied as a whole.

    ``tables`` maps a feature view name to ``(join_key, DataFrame)``: the DataFrame holds the
    join key column and one column per feature (an ``event_timestamp`` column is added when
    missing). The entity is named after the join key without ``_id``. ``online_store`` is the
    YAML body of the ``online_store:`` section (default: sqlite inside the repository; e.g.
    ``"  type: redis\\n  connection_string: 127.0.0.1:6379\\n"``).
    """
    import pandas as pd  # noqa: PLC0415 - a Feast dependency
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType  # noqa: PLC0415

    key_types = {"int32": ValueType.INT32, "int64": ValueType.INT64, "object": ValueType.STRING}
    # resolved once: Feast joins a relative source path to the repository path, so a relative
    # root used for both wrote repo/data/... and then read repo/repo/data/...
    root = Path(path).resolve()
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    (root / "feature_store.yaml").write_text(
        f"project: {project}\nregistry: data/registry.db\nprovider: local\n"
        f"online_store:\n{online_store.rstrip(chr(10))}\nentity_key_serialization_version: 3\n"
    )
    objects: list[Any] = []
    entities: dict[str, Any] = {}
    for view, (key, frame) in tables.items():
        if key not in frame.columns:
            raise SchemaError(f"build_feature_repo: table {view!r} has no join key column {key!r}")
        if "event_timestamp" not in frame.columns:
            frame = frame.assign(event_timestamp=now)
        source = Path("data") / f"{view}.parquet"
        frame.to_parquet(root / source, index=False)
        if key not in entities:
            key_type = key_types.get(str(frame[key].dtype))
            if key_type is None:
                raise SchemaError(f"build_feature_repo: join key {key!r} of {view!r} must be int32, int64 or str")
            entities[key] = Entity(name=key.removesuffix("_id") or key, join_keys=[key], value_type=key_type)
            objects.append(entities[key])
        schema = [Field(name=c, dtype=_feast_type(c, frame[c])) for c in frame.columns if c != "event_timestamp"]
        objects.append(FeatureView(
            name=view, entities=[entities[key]], ttl=ttl, schema=schema,
            source=FileSource(path=source.as_posix(), timestamp_field="event_timestamp"),
        ))
    store = FeatureStore(repo_path=str(root))
    store.apply(objects)
    store.materialize(now.to_pydatetime() - dt.timedelta(days=1), now.to_pydatetime() + dt.timedelta(seconds=1))
    return root
