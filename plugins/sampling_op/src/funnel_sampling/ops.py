"""Ordering operators: SoftmaxSampling (sampled without replacement) and TopK (by score).

Both read a candidate-id list column and a relevance column aligned with it (one score per
candidate, same list lengths per row) and return, per request row, ``topk`` ids and their
scores as dense ``(B, topk)`` columns ``ordered_ids`` and ``ordered_scores``.

Rows with fewer than ``topk`` candidates are padded on the right: ids with ``pad_id``
(default ``-1``; the largest value for unsigned ids; ``""`` for string ids) and scores
with ``pad_score`` (default ``0.0``: finite, so every response is valid strict JSON). A
row's first ``min(len, topk)`` entries are always its real candidates; ``ordered_lengths``
(int64, one per row) says how many.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import msgspec
import numpy as np
from funnel.errors import SchemaError
from funnel.graph import Dependency
from funnel.operator import Operator
from funnel.schema import ColumnSchema, Schema, Tags
from funnel.table import Ragged, Table, to_numpy

__all__ = ["SoftmaxSampling", "TopK", "OUTPUT_IDS", "OUTPUT_SCORES", "OUTPUT_LENGTHS"]

OUTPUT_IDS = "ordered_ids"
OUTPUT_SCORES = "ordered_scores"
#: per row, how many of the ``topk`` entries are real candidates (the rest is padding)
OUTPUT_LENGTHS = "ordered_lengths"


def _flat(values: np.ndarray, what: str, label: str) -> np.ndarray:
    """One value per candidate: accept (N,) or (N, 1)."""
    if values.ndim == 2 and values.shape[1] == 1:
        return values.reshape(-1)
    if values.ndim != 1:
        raise SchemaError(
            f"{label}: {what} must hold one value per candidate, got per-candidate shape {values.shape[1:]}"
        )
    return values


def _as_ragged(col: Any, name: str, label: str) -> Ragged:
    """The column as a host (numpy) Ragged with int64 offsets."""
    col = Ragged.coerce(col if isinstance(col, Ragged) else to_numpy(col), f"{label}: column {name!r}")
    return Ragged(to_numpy(col.values), to_numpy(col.offsets).astype(np.int64), validate=False)


class _Ordering(Operator):
    """Shared machinery: schema checks, alignment, the padded key matrix and the gather."""

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """What ``to_config`` writes; checked strictly (every key, no defaults) when an export loads."""

        relevance_col: str
        topk: int
        input_col: str | None
        pad_id: int | str | None
        pad_score: float

    def __init__(
        self,
        relevance_col: Any,
        topk: int = 10,
        input_col: str | None = None,
        pad_id: int | str | None = None,
        pad_score: float = 0.0,
    ) -> None:
        if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk < 1:
            raise SchemaError(f"{type(self).__name__}: topk must be a positive integer, got {topk!r}")
        if relevance_col is None:
            raise SchemaError(
                f"{type(self).__name__}: relevance_col is required: a node such as ranking['output_1'] "
                "or the name of a score column aligned with the candidate ids"
            )
        self.relevance_col = Dependency(relevance_col)
        self.topk = int(topk)
        self.input_col = input_col
        if pad_id is not None and (isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer, str))):
            # a float was truncated into integer ids (1.5 padded with 1) and True padded with 1
            raise SchemaError(
                f"{type(self).__name__}: pad_id must be an integer (a string for string ids) or None, got {pad_id!r}"
            )
        self.pad_id = pad_id if pad_id is None or isinstance(pad_id, str) else int(pad_id)
        try:
            self.pad_score = float(pad_score)
        except (TypeError, ValueError):
            self.pad_score = float("nan")
        if not math.isfinite(self.pad_score):
            raise SchemaError(
                f"{type(self).__name__}: pad_score must be a finite number (NaN/inf are not valid JSON), got {pad_score!r}"
            )
        self._ids_col: str | None = input_col

    # -- schema ---------------------------------------------------------------------------
    def _relevance_name(self) -> str:
        try:
            return self.relevance_col.column
        except SchemaError:
            raise SchemaError(
                f"{self.label}: relevance_col must name exactly one column, got {self.relevance_col.columns}; "
                "select one, e.g. ranking['output_1']"
            ) from None

    def _find_ids_col(self, list_columns: list[str]) -> str:
        if self.input_col is not None:
            return self.input_col
        rel = self._relevance_name()
        candidates = [n for n in list_columns if n != rel]
        if len(candidates) != 1:
            raise SchemaError(
                f"{self.label}: cannot tell which column holds the candidate ids among list columns "
                f"{candidates}; select one upstream (combined['item_id'] >> ...) or pass input_col='...'"
            )
        return candidates[0]

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        rel = self._relevance_name()
        (rel_schema,) = self.require(input_schema, [rel], dtype_kinds="iuf", list_column=True)
        ids_name = self._find_ids_col([c.name for c in input_schema if c.is_list])
        (ids_schema,) = self.require(input_schema, [ids_name], list_column=True)
        for col in (ids_schema, rel_schema):
            if col.dims[1:] not in ((), (1,)):
                raise SchemaError(
                    f"{self.label}: column {col.name!r} must hold one value per candidate, got "
                    f"per-row shape {col.dims}"
                )
        self._check_pad_id(ids_schema)
        self._ids_col = ids_name
        ids_out = ColumnSchema(
            OUTPUT_IDS, ids_schema.dtype, tags=ids_schema.tags, properties=ids_schema.properties,
            dims=(self.topk,), is_list=True, is_ragged=False,
        )
        scores_out = ColumnSchema(
            OUTPUT_SCORES, "float32", tags=[Tags.SCORE], dims=(self.topk,), is_list=True, is_ragged=False
        )
        lengths_out = ColumnSchema(OUTPUT_LENGTHS, "int64")
        return Schema([ids_out, scores_out, lengths_out])

    def _check_pad_id(self, ids: ColumnSchema) -> None:
        """``pad_id`` must be a value of the ids' dtype: checked when the graph is built, not
        when a short row of some request meets it (an overflow there failed that request)."""
        pad = self.pad_id
        if pad is None:
            return
        where = f"{self.label}: pad_id={pad!r} cannot pad candidate ids {ids.name!r} of dtype {ids.dtype}"
        if ids.dtype == "str" or isinstance(pad, str):
            if ids.dtype != "str" or not isinstance(pad, str):
                raise SchemaError(f"{where}; pass {'a string' if ids.dtype == 'str' else 'an integer'} pad_id")
            return
        dtype = ids.numpy_dtype
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if not info.min <= pad <= info.max:
                raise SchemaError(f"{where} (range {info.min}..{info.max}); pass a pad_id in that range")
        elif dtype.kind == "f" and float(dtype.type(pad)) != pad:
            raise SchemaError(f"{where} exactly; pass a smaller integer")
        elif dtype.kind not in "iuf":
            raise SchemaError(f"{where}; leave pad_id unset")

    # -- transform ------------------------------------------------------------------------
    def _keys(self, scores: np.ndarray) -> np.ndarray:
        """Per-candidate sort keys (descending); ``scores`` is float64, flat, in row order."""
        raise NotImplementedError

    def _pad_value(self, dtype: np.dtype) -> Any:
        if self.pad_id is not None:
            return self.pad_id
        if dtype.kind == "O":
            return ""
        if dtype.kind == "u":
            return np.iinfo(dtype).max
        return -1

    def transform(self, table: Table) -> Table:
        rel_name = self._relevance_name()
        ids_name = self._ids_col or self._find_ids_col(
            [n for n, c in table.items() if isinstance(c, Ragged) or getattr(c, "ndim", 1) >= 2]
        )
        ids = _as_ragged(table[ids_name], ids_name, self.label)
        rel = _as_ragged(table[rel_name], rel_name, self.label)
        if not ids.same_offsets(rel):
            raise SchemaError(
                f"{self.label}: relevance column {rel_name!r} is not aligned with candidate ids {ids_name!r} "
                f"(list lengths per row {np.diff(rel.offsets).tolist()[:8]} vs "
                f"{np.diff(ids.offsets).tolist()[:8]}); score the candidates row-wise after UnrollFeatures"
            )
        id_values = _flat(ids.values, f"candidate ids {ids_name!r}", self.label)
        scores = _flat(rel.values, f"relevance {rel_name!r}", self.label).astype(np.float64, copy=False)
        offsets = ids.offsets
        lengths = np.diff(offsets)
        b, k = lengths.size, self.topk
        # Padded (B, longest) key matrix: NaN in padding sorts after every real candidate
        # (a stable sort keeps real NaN/-inf keys, which sit at lower positions, first).
        keys = Ragged(self._keys(scores), offsets, validate=False).to_dense(pad_value=np.nan)
        order = np.argsort(-keys, axis=1, kind="stable")[:, :k]
        valid = order < lengths[:, None]
        src = (offsets[:-1, None] + order)[valid]
        w = order.shape[1]
        out_ids = np.full((b, k), self._pad_value(id_values.dtype), dtype=id_values.dtype)
        out_scores = np.full((b, k), self.pad_score, dtype=np.float32)
        out_ids[:, :w][valid] = id_values[src]
        out_scores[:, :w][valid] = scores[src]
        out_lengths = np.minimum(lengths, k).astype(np.int64)
        return Table({OUTPUT_IDS: out_ids, OUTPUT_SCORES: out_scores, OUTPUT_LENGTHS: out_lengths}, num_rows=b)

    # -- config ---------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {
            "relevance_col": self._relevance_name(),
            "topk": self.topk,
            "input_col": self.input_col,
            "pad_id": self.pad_id,
            "pad_score": self.pad_score,
        }


class SoftmaxSampling(_Ordering):
    """Sample an ordering of each row's candidates without replacement, P ∝ exp(score · temperature).

    **Temperature has Merlin's meaning** so a ported Merlin graph orders the same way:
    the first position is candidate ``i`` with probability
    ``exp(s_i · t) / Σ_j exp(s_j · t)`` — ``temperature`` multiplies the scores (it is an
    inverse temperature): larger → closer to :class:`TopK`, smaller → flatter. The default
    ``20.0`` is Merlin's and is near-greedy for scores in [0, 1].

    ``textbook_temperature=T`` instead gives the textbook softmax ``exp(s_i / T)``
    (larger → flatter). Give one of the two, not both.

    Each next position is drawn the same way from the candidates not yet drawn (the
    Plackett–Luce model), exactly, by Gumbel-top-k: ``argsort(key + G)`` with i.i.d.
    standard Gumbel noise ``G``, vectorised over the batch.

    **Seed.** ``seed=None`` draws fresh OS entropy. With an integer seed the operator
    holds one generator created when it is constructed (or loaded from a saved/exported
    graph) and draws exactly one Gumbel value per candidate, in request-row order. The
    output therefore depends only on the sequence of candidate rows seen since the
    operator was built — not on how those rows were grouped into calls or batches — so a
    freshly loaded served model and a fresh in-process ensemble return identical
    orderings for the same sequence of requests (with one Triton model instance and
    requests sent in order). Identical requests in a row get *different* samples.

    Outputs: ``ordered_ids`` (ids' dtype) and ``ordered_scores`` (float32, the raw
    relevance of each chosen candidate), both ``(B, topk)``, and ``ordered_lengths``;
    short rows are padded (see the module docstring). Candidates with a NaN score come
    after all others; ``-inf`` scores have probability 0 and come after every
    finite-scored candidate.

    ``combined["item_id"] >> SoftmaxSampling(relevance_col=ranking["output_1"], topk=10, temperature=20.0)``
    """

    type_name = "sampling.SoftmaxSampling"

    class Config(_Ordering.Config):
        """The keys of every ordering op plus the sampling ones; checked the same way."""

        temperature: float | None
        textbook_temperature: float | None
        seed: int | None

    def __init__(
        self,
        relevance_col: Any,
        temperature: float | None = None,
        topk: int = 10,
        seed: int | None = None,
        input_col: str | None = None,
        pad_id: int | str | None = None,
        pad_score: float = 0.0,
        *,
        textbook_temperature: float | None = None,
    ) -> None:
        super().__init__(relevance_col, topk=topk, input_col=input_col, pad_id=pad_id, pad_score=pad_score)
        if temperature is not None and textbook_temperature is not None:
            raise SchemaError(
                "SoftmaxSampling: give temperature (Merlin's meaning, exp(score * temperature)) or "
                "textbook_temperature (exp(score / T)), not both"
            )
        if temperature is None and textbook_temperature is None:
            temperature = 20.0  # Merlin's default
        name = "temperature" if temperature is not None else "textbook_temperature"
        value = _positive(temperature if temperature is not None else textbook_temperature, name)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise SchemaError(f"SoftmaxSampling: seed must be a non-negative integer or None, got {seed!r}")
        self.temperature = value if name == "temperature" else None
        self.textbook_temperature = value if name == "textbook_temperature" else None
        self.seed = None if seed is None else int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._lock = threading.Lock()

    def __copy__(self) -> SoftmaxSampling:
        """The per-graph copy a graph binds: its own generator (from ``seed``) and lock, so one
        operator used in two graphs shares no random state; each graph starts at the seed."""
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._rng = np.random.default_rng(self.seed)
        new._lock = threading.Lock()
        return new

    def _keys(self, scores: np.ndarray) -> np.ndarray:
        with self._lock:
            noise = self._rng.gumbel(size=scores.shape[0])
        if self.temperature is not None:
            return scores * self.temperature + noise
        return scores / self.textbook_temperature + noise

    def to_config(self) -> dict[str, Any]:
        return {**super().to_config(), "temperature": self.temperature,
                "textbook_temperature": self.textbook_temperature, "seed": self.seed}


def _positive(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (number > 0 and math.isfinite(number)):
        raise SchemaError(f"SoftmaxSampling: {name} must be a positive finite number, got {value!r}")
    return number


class TopK(_Ordering):
    """Order each row's candidates by relevance, highest first, and keep ``topk``.

    Deterministic: equal scores keep their order in the candidate list (a stable sort;
    the earlier candidate comes first). NaN scores come last. Outputs and padding are
    those of :class:`SoftmaxSampling`.

    ``combined["item_id"] >> TopK(relevance_col=ranking["output_1"], topk=10)``
    """

    type_name = "sampling.TopK"

    def _keys(self, scores: np.ndarray) -> np.ndarray:
        return scores
