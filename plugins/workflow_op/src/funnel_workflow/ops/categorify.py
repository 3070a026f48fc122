"""Categorify: raw categorical values → contiguous integer ids, fitted on the data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from funnel.errors import OperatorError, SchemaError
from funnel.schema import ColumnSchema, Schema, Tags
from funnel.table import Ragged, Table

from funnel_workflow.base import StatOperator, is_null
from funnel_workflow.ops._util import hash64, per_column, rewrap, values_of

__all__ = ["Categorify", "PAD_INDEX", "NULL_INDEX", "OOV_INDEX"]

#: NVTabular 23.08 encoding: reserved indices before the vocabulary
PAD_INDEX, NULL_INDEX, OOV_INDEX = 0, 1, 2


class Categorify(StatOperator):
    """Encode categorical columns (scalar or list) as contiguous integers.

    Two encodings, as NVTabular had them:

    * default (NVTabular 23.06+): 0 = padding, 1 = null, ``2 .. 2+B-1`` = out-of-vocabulary
      (``B = num_buckets`` hash buckets, 1 when not given), then the vocabulary ordered by
      frequency (most frequent first, ties by value);
    * ``start_index=k`` (NVTabular before 23.06, the Transformers4Rec example): ``k`` is the
      out-of-vocabulary/null value and the vocabulary, sorted by value, takes ``k+1 ..``.

    ``freq_threshold`` (int or per-column dict): values seen fewer times are out of
    vocabulary. ``max_size`` (int or dict): keep the most frequent values only.
    ``num_buckets`` (default encoding): out-of-vocabulary values are hashed into that many
    buckets. The vocabulary of each column is ``workflow.categories(col)``.
    """

    type_name = "workflow.Categorify"
    has_array_path = True

    def __init__(
        self,
        freq_threshold: int | dict[str, int] = 0,
        max_size: int | dict[str, int] = 0,
        num_buckets: int | dict[str, int] | None = None,
        start_index: int | None = None,
        dtype: str = "int64",
        offline_only: bool = False,
        **unsupported: Any,
    ) -> None:
        if unsupported:
            raise SchemaError(
                f"Categorify: unsupported argument(s) {sorted(unsupported)}; funnel-workflow supports "
                "freq_threshold, max_size, num_buckets, start_index, dtype (see the plugin README)"
            )
        if start_index is not None and num_buckets:
            raise SchemaError(
                "Categorify: num_buckets (hashed out-of-vocabulary buckets) needs the default encoding; "
                "it cannot be combined with start_index"
            )
        if start_index is not None and int(start_index) < 0:
            raise SchemaError(f"Categorify: start_index must be >= 0, got {start_index}")
        self.freq_threshold = freq_threshold
        self.max_size = max_size
        self.num_buckets = num_buckets
        self.start_index = None if start_index is None else int(start_index)
        self.dtype = str(np.dtype(dtype))
        if offline_only:
            self.offline_only = True
        # fitted state, per column: vocabulary in encoding order, counts, lookup tables
        self.vocab: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}
        self.null_counts: dict[str, int] = {}
        self._lookup: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # -- encoding layout --------------------------------------------------------------------
    @property
    def legacy(self) -> bool:
        """True for the ``start_index`` encoding."""
        return self.start_index is not None

    def buckets(self, column: str) -> int:
        """Number of out-of-vocabulary indices of ``column`` (default encoding)."""
        return int(per_column(self.num_buckets, column, 1) or 1)

    def first_index(self, column: str) -> int:
        """The id of the first vocabulary value."""
        if self.legacy:
            return int(self.start_index) + 1  # type: ignore[arg-type]
        return OOV_INDEX + self.buckets(column)

    def cardinality(self, column: str) -> int:
        """Number of distinct ids (max id + 1): the embedding table size."""
        return self.first_index(column) + len(self.vocab.get(column, ()))

    # -- schema ---------------------------------------------------------------------------
    def output_columns(self, input_schema: Schema, selected: list[str], names: list[str]) -> list[ColumnSchema]:
        cols = []
        for name in names:
            src = input_schema[name]
            props = dict(src.properties)
            tags = [t for t in src.tags if t != Tags.CONTINUOUS.value] + [Tags.CATEGORICAL]
            if name in ("item_id", "session_id"):
                tags.append(name)
            if self.fitted:
                card = self.cardinality(name)
                props.update({
                    "cardinality": card,
                    "num_items": card,
                    "domain": {"min": 0, "max": card - 1, "name": name},
                    "encoding": "start_index" if self.legacy else "nvtabular-23.08",
                    "first_index": self.first_index(name),
                    "start_index": self.start_index,
                    "freq_threshold": per_column(self.freq_threshold, name, 0),
                    "num_buckets": None if self.legacy else self.buckets(name),
                })
            col = ColumnSchema(name, self.dtype, tags=tags, properties=props, dims=src.dims,
                               is_list=src.is_list, is_ragged=src.is_ragged)
            cols.append(self._decorate(col))
        return cols

    # -- fit --------------------------------------------------------------------------------
    def fit_partition(self, table: Table) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.input_columns:
            vals = values_of(table[name])
            null = is_null(vals)
            kept = vals[~null] if null.any() else vals
            if kept.dtype.kind == "O":
                kept = kept.astype(str).astype(object)
            uniq, counts = np.unique(kept, return_counts=True)
            out[name] = (uniq, counts.astype(np.int64), int(null.sum()))
        return out

    def combine(self, partials: list[Any]) -> None:
        for name in self.input_columns:
            parts = [p[name] for p in partials if name in p]
            uniq = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
            counts = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
            if uniq.size:
                uniq, inverse = np.unique(uniq, return_inverse=True)
                counts = np.bincount(inverse.reshape(-1), weights=counts, minlength=uniq.size).astype(np.int64)
            thr = int(per_column(self.freq_threshold, name, 0) or 0)
            if thr > 1:
                keep = counts >= thr
                uniq, counts = uniq[keep], counts[keep]
            order = np.lexsort((uniq, -counts))  # by frequency, ties by value
            size = int(per_column(self.max_size, name, 0) or 0)
            if size and order.size > size:
                order = order[:size]
            if self.legacy:
                order = np.sort(order)  # uniq is sorted by value: the legacy order
            self.vocab[name] = uniq[order]
            self.counts[name] = counts[order]
            self.null_counts[name] = int(sum(p[2] for p in parts))
        self._build_lookup()
        self.__dict__["_fitted"] = True

    def _build_lookup(self) -> None:
        self._lookup = {}
        for name, vocab in self.vocab.items():
            ids = np.arange(len(vocab), dtype=np.int64) + self.first_index(name)
            order = np.argsort(vocab, kind="stable")
            self._lookup[name] = (vocab[order], ids[order])

    # -- transform --------------------------------------------------------------------------
    def encode(self, name: str, values: np.ndarray) -> np.ndarray:
        """Ids of raw ``values`` of column ``name`` (nulls and unseen values per the encoding)."""
        self.require_fitted()
        if name not in self._lookup:
            raise OperatorError(f"Categorify: column {name!r} was not fitted; fitted: {sorted(self._lookup)}")
        sorted_vals, sorted_ids = self._lookup[name]
        null = is_null(values)
        probe = values
        if values.dtype.kind == "O":
            probe = np.where(null, "", values).astype(str).astype(object)
        elif sorted_vals.dtype.kind == "O":
            probe = values.astype(str).astype(object)
        elif values.dtype.kind == "f" and sorted_vals.dtype.kind in "iu":
            probe = np.where(null, 0, values)
        n = sorted_vals.shape[0]
        if n:
            pos = np.searchsorted(sorted_vals, probe)
            pos_c = np.minimum(pos, n - 1)
            found = (pos < n) & (sorted_vals[pos_c] == probe) & ~null
            ids = np.where(found, sorted_ids[pos_c], 0)
        else:
            found = np.zeros(values.shape[0], dtype=bool)
            ids = np.zeros(values.shape[0], dtype=np.int64)
        if self.legacy:
            ids = np.where(found, ids, self.start_index)
        else:
            b = self.buckets(name)
            oov = OOV_INDEX + (hash64(probe) % np.uint64(b)).astype(np.int64) if b > 1 else OOV_INDEX
            ids = np.where(found, ids, np.where(null, NULL_INDEX, oov))
        return ids.astype(self.dtype, copy=False)

    def transform_arrays(self, table: Table) -> Table:
        return Table({n: rewrap(table[n], self.encode(n, values_of(table[n]))) for n in self.input_columns},
                     num_rows=table.num_rows)

    # -- decoding ---------------------------------------------------------------------------
    def categories(self, name: str) -> Any:
        """The vocabulary of ``name`` as a DataFrame: ``encoded`` id, raw value, ``count``."""
        import pandas as pd  # noqa: PLC0415

        self.require_fitted()
        if name not in self.vocab:
            raise OperatorError(f"Categorify: no vocabulary for column {name!r}; fitted: {sorted(self.vocab)}")
        vocab = self.vocab[name]
        return pd.DataFrame({
            "encoded": np.arange(len(vocab), dtype=np.int64) + self.first_index(name),
            name: vocab,
            "count": self.counts[name],
        })

    def decode(self, name: str, ids: Any, fill: Any = None) -> Any:
        """Raw values of encoded ``ids`` (a scalar/list column or array). Reserved ids
        (padding, null, out-of-vocabulary) become ``fill``; with ``fill=None`` they raise."""
        self.require_fitted()
        vocab = self.vocab[name]
        arr = values_of(ids).astype(np.int64)
        pos = arr - self.first_index(name)
        bad = (pos < 0) | (pos >= len(vocab))
        if bad.any() and fill is None:
            raise OperatorError(
                f"Categorify: column {name!r}: id(s) {np.unique(arr[bad])[:10].tolist()} are reserved "
                f"(padding/null/out-of-vocabulary) or beyond the vocabulary (ids {self.first_index(name)}.."
                f"{self.cardinality(name) - 1}); pass fill= to decode them to a value"
            )
        raw = vocab[np.clip(pos, 0, max(len(vocab) - 1, 0))] if len(vocab) else np.full(arr.shape, fill)
        if bad.any():
            raw = raw.astype(object) if not isinstance(fill, (int, float)) or vocab.dtype.kind == "O" else raw.copy()
            raw[bad] = fill
        return rewrap(ids, raw) if isinstance(ids, Ragged) else raw

    # -- persistence ------------------------------------------------------------------------
    def stats(self) -> tuple[dict[str, Any], dict[str, Any]]:
        frames = {f"unique.{n}": self.categories(n) for n in self.vocab}
        data = {"columns": sorted(self.vocab), "null_counts": self.null_counts,
                "dtypes": {n: str(v.dtype) for n, v in self.vocab.items()}}
        return data, frames

    def set_stats(self, data: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
        for name in data["columns"]:
            frame = arrays[f"unique.{name}"]
            values = frame[name].to_numpy()
            if data["dtypes"].get(name) == "object":
                values = values.astype(object)
            self.vocab[name] = values
            self.counts[name] = frame["count"].to_numpy().astype(np.int64)
            self.null_counts[name] = int(data["null_counts"].get(name, 0))
        self._build_lookup()
        self.__dict__["_fitted"] = True

    def to_config(self) -> dict[str, Any]:
        return {"freq_threshold": self.freq_threshold, "max_size": self.max_size,
                "num_buckets": self.num_buckets, "start_index": self.start_index, "dtype": self.dtype,
                **self.base_config()}
