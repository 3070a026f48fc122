"""PredictPyTorch: run a PyTorch model (TorchScript, torch.export, nn.Module) on a batch.

torch is imported only when a model is loaded (building the operator from a model, or
``load_artifacts``), never at module import, so ``funnel plugins`` stays fast.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from funnel.casting import cast_lossless, check_castable
from funnel.errors import ArtifactError, RequestError, SchemaError
from funnel.operator import NativeTritonModel, Operator
from funnel.schema import ColumnSchema, Schema
from funnel.table import Ragged, Table, array_module

from funnel_torch.signature import (
    ModelInput,
    dtype_name,
    export_inputs,
    module_inputs,
    torchscript_inputs,
)

__all__ = ["PredictPyTorch", "configure_torch", "load_model", "resolve_device", "TORCHSCRIPT_FILE", "EXPORT_FILE"]

TORCHSCRIPT_FILE = "model.pt"
EXPORT_FILE = "model.pt2"
MAPPING_FILE = "id_mapping.npy"
VALUES, OFFSETS = "__values", "__offsets"
TOPK_SCORES, TOPK_IDS = "item_id_scores", "item_ids"

_INSTALL_HINT = "PyTorch is not installed; install it with `pip install funnel-torch` (it depends on torch)"


_TORCH: Any = None


def _torch() -> Any:
    global _TORCH  # noqa: PLW0603 - imported once, on first use
    if _TORCH is None:
        try:
            import torch  # noqa: PLC0415 - lazy on purpose
        except ImportError as exc:
            raise ImportError(_INSTALL_HINT) from exc
        _TORCH = torch
    return _TORCH


def configure_torch(intra_op_threads: int | None = None) -> None:
    """Set torch's intra-op thread count (``FUNNEL_TORCH_INTRA_OP_THREADS`` overrides the argument).

    ``None`` keeps torch's default (all cores). A serving process with several model
    instances sets it so they share the cores instead of oversubscribing them.
    """
    torch = _torch()
    env = os.environ.get("FUNNEL_TORCH_INTRA_OP_THREADS", "").strip()
    if env:
        try:
            intra_op_threads = int(env)
        except ValueError:
            raise ValueError(f"environment variable FUNNEL_TORCH_INTRA_OP_THREADS={env!r} must be an integer") from None
    if intra_op_threads is not None and torch.get_num_threads() != int(intra_op_threads):
        torch.set_num_threads(int(intra_op_threads))


def resolve_device(device: str) -> str:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` as given; ``"instance"`` = the Triton instance's GPU:
    ``FUNNEL_INSTANCE_DEVICE`` when set, else torch's current CUDA device (where the runtime's
    cupy request tables live), else ``cpu``."""
    torch = _torch()
    if device == "instance":
        device = os.environ.get("FUNNEL_INSTANCE_DEVICE") or (
            f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
        )
    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:")):
        raise SchemaError(f"PredictPyTorch: device {device!r} is not one of 'cpu', 'cuda', 'cuda:N', 'instance'")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ArtifactError(
                f"PredictPyTorch: device {device!r} was asked for but torch sees no CUDA device "
                f"(torch {torch.__version__}); use device='cpu' or install a CUDA build of torch"
            )
        index = device.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise ArtifactError(
                f"PredictPyTorch: device {device!r} does not exist; torch sees {torch.cuda.device_count()} GPU(s)"
            )
    return device


def load_model(path: Path, device: str = "cpu") -> tuple[str, Any, Any]:
    """(format, callable, loaded object) for a ``.pt`` TorchScript or ``.pt2`` torch.export file."""
    torch = _torch()
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"PredictPyTorch: model file {path} not found")
    if path.suffix == ".pt2":
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise ArtifactError(f"PredictPyTorch: loading the torch.export program {path} failed: {exc}") from exc
        if device != "cpu":
            from torch.export.passes import move_to_device_pass  # noqa: PLC0415

            program = move_to_device_pass(program, device)
        return "export", program.module(), program
    try:
        module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:
        raise ArtifactError(
            f"PredictPyTorch: {path} is not a TorchScript file ({exc}); save one with torch.jit.trace/script(...)"
            ".save(path), or a torch.export program with torch.export.save(program, 'model.pt2')"
        ) from exc
    return "torchscript", module.eval(), module


def _list_length(col: ColumnSchema | None) -> int | None:
    """The fixed list length a schema column declares: ``value_count.max`` or fixed dims ``(k,)``."""
    if col is None:
        return None
    count = col.properties.get("value_count")
    if isinstance(count, Mapping) and count.get("max"):
        return int(count["max"])
    if col.is_list and not col.is_ragged and col.dims and col.dims[0]:
        return int(col.dims[0])
    return None


class PredictPyTorch(Operator):
    """Run a PyTorch model on a batch: session models over list columns, rankers per row.

    ``model`` is a TorchScript file (``.pt``, ``torch.jit.trace``/``script``), a
    ``torch.export`` program file (``.pt2``) or an ``nn.Module``/``ExportedProgram`` in
    process (an ``nn.Module`` is traced, or exported with ``export_format="export"``, when
    the graph is saved; its state is never pickled).

    Inputs follow what the model's signature asks for (a dict of tensors or positional
    tensors): a pair ``<col>__values`` + ``<col>__offsets`` reads list column ``<col>`` as
    values and offsets (Transformers4Rec serving inputs); an input named like a list column
    gets that column padded with 0 to a fixed length, taken from ``max_sequence_length`` (an
    int, or ``{column: int}``), a fixed dim of the exported program, or the column's
    ``value_count.max`` property — never the batch's longest row, so a session's scores do
    not depend on its batch neighbours. Other inputs take one value (or fixed-shape tensor)
    per row. Dtypes are cast only when lossless (``funnel.casting``).

    Outputs: the model's outputs as they are (a ``(B, 1)`` output as one value per row), or
    with ``top_k=k`` the k best items of the ``(B, n_items)`` logits per row, computed on the
    model's device: ``item_id_scores`` (float32) and ``item_ids`` (int64) list columns.
    ``exclude_seen=True`` removes the items of ``item_id_column`` (the session's item list)
    first; ``id_mapping`` (an integer numpy array, encoded id → raw id, e.g. a Categorify
    vocabulary) decodes the ids.

    A model without list inputs is row-wise: after ``UnrollFeatures`` it runs once over all
    candidate rows (a ranker over candidate lists). ``device``: ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` or ``"instance"`` (the GPU of the Triton instance running it).
    ``intra_op_threads`` sizes torch's thread pool (see :func:`configure_torch`).
    """

    type_name = "torch.PredictPyTorch"
    rowwise = True

    def __init__(
        self,
        model: Any,
        input_schema: Schema | None = None,
        output_schema: Schema | None = None,
        *,
        max_sequence_length: int | Mapping[str, int] | None = None,
        top_k: int | None = None,
        exclude_seen: bool = False,
        item_id_column: str | None = None,
        id_mapping: Any = None,
        truncate: str | None = None,
        device: str = "cpu",
        intra_op_threads: int | None = None,
        export_format: str = "torchscript",
    ) -> None:
        torch = _torch()
        self.device = device
        self.intra_op_threads = intra_op_threads
        self.top_k = None if top_k is None else int(top_k)
        self.exclude_seen = bool(exclude_seen)
        self.truncate = truncate
        self.export_format = export_format
        if truncate not in (None, "first", "last"):
            raise SchemaError(f"PredictPyTorch: truncate={truncate!r} must be None (refuse), 'first' or 'last'")
        if export_format not in ("torchscript", "export"):
            raise SchemaError(f"PredictPyTorch: export_format={export_format!r} must be 'torchscript' or 'export'")
        if self.top_k is not None and self.top_k < 1:
            raise SchemaError(f"PredictPyTorch: top_k={top_k!r} must be a positive integer")
        configure_torch(intra_op_threads)
        self._device = resolve_device(device)
        self._source: Path | None = None
        self._module: Any = None
        where = ""
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            where = str(path)
            self.format, self._model, loaded = load_model(path, self._device)
            self._source = path
        elif isinstance(model, torch.export.ExportedProgram):
            self.format, loaded = "export", model
            self._program = model
            self._model = model.module() if self._device == "cpu" else load_model_program(model, self._device)
            where = "(ExportedProgram)"
        elif isinstance(model, torch.jit.ScriptModule):
            self.format, loaded, self._model = "torchscript", model, model.eval().to(self._device)
            where = "(ScriptModule)"
        elif isinstance(model, torch.nn.Module):
            self.format, loaded = "module", model
            self._module = self._model = model.eval().to(self._device)
            where = type(model).__name__
        else:
            raise ArtifactError(
                "PredictPyTorch: model must be a .pt (TorchScript) or .pt2 (torch.export) file, an nn.Module, "
                f"a ScriptModule or an ExportedProgram; got {type(model).__name__}"
            )
        names = None
        if input_schema is not None:
            names = []
            for col in input_schema:
                padded = isinstance(max_sequence_length, Mapping) and col.name in max_sequence_length
                if col.is_list and col.is_ragged and not padded and not (
                    isinstance(max_sequence_length, int) and not isinstance(max_sequence_length, bool)
                ):
                    names += [col.name + VALUES, col.name + OFFSETS]
                else:
                    names.append(col.name)
        if self.format == "export":
            self.call, sig = export_inputs(loaded, where)
        elif self.format == "torchscript":
            self.call, sig = torchscript_inputs(loaded, where)
        else:
            self.call, sig = module_inputs(loaded, names, where)
        self.inputs = self._plan_inputs(sig, input_schema, max_sequence_length)
        self.rowwise = not any(s["kind"] != "dense" for s in self.inputs)  # type: ignore[misc]
        self.item_id_column = item_id_column or self._default_item_column(input_schema)
        self._mapping_np: np.ndarray | None = None
        self._mapping: Any = None
        if id_mapping is not None:
            self._set_mapping(id_mapping)
        self.has_mapping = id_mapping is not None
        self.outputs = self._outputs_from(output_schema) if output_schema is not None else self._probe_outputs()
        self._check_top_k()

    # -- planning ---------------------------------------------------------------------
    def _plan_inputs(
        self, sig: list[ModelInput], schema: Schema | None, max_len: int | Mapping[str, int] | None
    ) -> list[dict[str, Any]]:
        plan: list[dict[str, Any]] = []
        for s in sig:
            name = s.name
            dtype = s["dtype"]
            shape = s["shape"]
            if name.endswith(VALUES):  # with or without its offsets (a model may read one column's)
                column, kind = name[: -len(VALUES)], "values"
            elif name.endswith(OFFSETS):
                column, kind = name[: -len(OFFSETS)], "offsets"
                dtype = dtype or "int64"
            else:
                column = name
                col = schema.get(name) if schema is not None else None
                if isinstance(max_len, Mapping):
                    listy = name in max_len
                elif col is not None:
                    listy = col.is_list
                else:
                    listy = max_len is not None and (shape is None or len(shape) == 2)
                kind = "padded" if listy else "dense"
            col = schema.get(column) if schema is not None else None
            if dtype is None and col is not None and kind != "offsets":
                dtype = col.dtype
            entry: dict[str, Any] = {"name": name, "column": column, "kind": kind, "dtype": dtype, "shape": shape}
            if kind == "padded":
                length = None
                if shape is not None and len(shape) == 2 and shape[1] is not None:
                    length = int(shape[1])
                elif isinstance(max_len, Mapping):
                    length = int(max_len[name])
                elif isinstance(max_len, int):
                    length = int(max_len)
                else:
                    length = _list_length(col)
                entry["length"] = length
            plan.append(entry)
        if schema is not None:
            unknown = sorted({p["column"] for p in plan} - set(schema.column_names))
            if unknown:
                raise SchemaError(
                    f"PredictPyTorch: the model takes input(s) for column(s) {unknown} that input_schema does not "
                    f"have; input_schema has {schema.column_names}"
                )
        return plan

    def _default_item_column(self, schema: Schema | None) -> str | None:
        lists = list(dict.fromkeys(p["column"] for p in self.inputs if p["kind"] != "dense"))
        if schema is not None:
            tagged = [c for c in lists if c in schema and "item_id" in schema[c].tags]
            if len(tagged) == 1:
                return tagged[0]
        return lists[0] if len(lists) == 1 else None

    @property
    def columns(self) -> list[str]:
        """The input columns this operator reads, in the model's order."""
        return list(dict.fromkeys(p["column"] for p in self.inputs))

    # -- feeding ----------------------------------------------------------------------
    def _to_torch(self, arr: Any) -> Any:
        torch = _torch()
        if type(arr) is np.ndarray and self._device == "cpu":  # the hot path
            if not arr.flags.writeable or not arr.flags.c_contiguous:
                arr = np.array(arr, copy=True, order="C")
            return torch.from_numpy(arr)
        mod = array_module(arr)
        if mod == "torch":
            t = arr
        elif mod == "cupy":
            t = torch.from_dlpack(arr)
        else:
            arr = np.asarray(arr)
            if not arr.flags.writeable or not arr.flags.c_contiguous:
                arr = np.array(arr, copy=True, order="C")
            t = torch.from_numpy(arr)
        return t if str(t.device) == self._device or (self._device == "cuda" and t.is_cuda) else t.to(self._device)

    def _cast(self, arr: Any, dtype: str | None, column: str) -> Any:
        if dtype is None or (type(arr) is np.ndarray and arr.dtype.name == dtype):
            return arr
        return cast_lossless(arr, dtype, column=column, where=self.label, error=RequestError)

    def _pad(self, col: Any, spec: dict[str, Any], rows: int) -> Any:
        """A list column as a (rows, length) tensor padded with 0 on the right."""
        torch = _torch()
        length = spec["length"]
        column = spec["column"]
        if not isinstance(col, Ragged):
            dense = self._to_torch(self._cast(col, spec["dtype"], column))
            if dense.ndim != 2:
                raise RequestError(f"{self.label}: column {column!r} must be a list column; got shape {tuple(dense.shape)}")
            width = dense.shape[1]
            if width > length:
                dense = self._cut_dense(dense, length, column)
            elif width < length:
                dense = torch.nn.functional.pad(dense, (0, length - width))
            return dense
        values = self._to_torch(self._cast(col.values, spec["dtype"], column))
        offsets = self._to_torch(col.offsets).to(torch.int64)
        lengths = offsets[1:] - offsets[:-1]
        longest = int(lengths.max()) if rows else 0
        starts = offsets[:-1]
        if longest > length:
            if self.truncate is None:
                raise RequestError(
                    f"{self.label}: column {column!r} has a list of {longest} elements, longer than the model's fixed "
                    f"length {length}; slice it upstream (ListSlice) or pass truncate='last'/'first'"
                )
            if self.truncate == "last":
                starts = torch.clamp(offsets[1:] - length, min=0)
                starts = torch.maximum(starts, offsets[:-1])
            lengths = torch.clamp(lengths, max=length)
        out = torch.zeros((rows, length, *values.shape[1:]), dtype=values.dtype, device=values.device)
        total = int(lengths.sum())
        if total:
            row_ids = torch.repeat_interleave(torch.arange(rows, device=values.device), lengths)
            first = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
            pos = torch.arange(total, device=values.device) - first
            src = torch.repeat_interleave(starts, lengths) + pos
            out[row_ids, pos] = values[src]
        return out

    def _cut_dense(self, dense: Any, length: int, column: str) -> Any:
        if self.truncate is None:
            raise RequestError(
                f"{self.label}: column {column!r} has {dense.shape[1]} elements per row, more than the model's fixed "
                f"length {length}; slice it upstream or pass truncate='first'"
            )
        if self.truncate == "last":
            raise RequestError(
                f"{self.label}: column {column!r} is a padded (B, k) column; truncate='last' needs list lengths, "
                "send it as a ragged list column"
            )
        return dense[:, :length]

    def _feeds(self, table: Table) -> dict[str, Any]:
        rows = table.num_rows
        feeds: dict[str, Any] = {}
        for spec in self.inputs:
            col = table[spec["column"]]
            kind = spec["kind"]
            if kind in ("values", "offsets"):
                rag = Ragged.coerce(col, name=f"{self.label}: column {spec['column']!r}")
                part = rag.values if kind == "values" else rag.offsets
                feeds[spec["name"]] = self._to_torch(self._cast(part, spec["dtype"], spec["name"]))
            elif kind == "padded":
                feeds[spec["name"]] = self._pad(col, spec, rows)
            else:
                if isinstance(col, Ragged):
                    raise RequestError(
                        f"{self.label}: column {spec['column']!r} is a list column; the model takes one value per row"
                    )
                t = self._to_torch(self._cast(col, spec["dtype"], spec["name"]))
                shape = spec["shape"]
                if shape is not None and len(shape) == 2 and shape[1] == 1 and t.ndim == 1:
                    t = t[:, None]
                elif shape is not None and len(shape) == 1 and t.ndim == 2 and t.shape[1] == 1:
                    t = t[:, 0]
                feeds[spec["name"]] = t
        return feeds

    def _run_raw(self, feeds: dict[str, Any]) -> Any:
        torch = _torch()
        with torch.inference_mode():
            if self.call == "dict":
                return self._model(dict(feeds))  # a fresh dict: traced T4R models convert inputs in place
            return self._model(*[feeds[s["name"]] for s in self.inputs])

    def _call(self, feeds: dict[str, Any]) -> list[Any]:
        return self._flatten(self._run_raw(feeds))

    def _flatten(self, result: Any) -> list[Any]:
        torch = _torch()
        if isinstance(result, torch.Tensor):
            return [result]
        if isinstance(result, Mapping):
            if getattr(self, "outputs", None):
                try:
                    return [result[o["name"]] for o in self.outputs]
                except KeyError as exc:
                    raise SchemaError(
                        f"{self.label}: the model returned keys {sorted(result)}; expected {[o['name'] for o in self.outputs]}"
                    ) from exc
            return list(result.values())
        if isinstance(result, (tuple, list)):
            flat = list(result)
            if all(isinstance(t, torch.Tensor) for t in flat):
                return flat
        raise SchemaError(
            f"{self.label}: the model returned {type(result).__name__}; models must return a tensor, a tuple of "
            "tensors or a dict of tensors"
        )

    # -- outputs ----------------------------------------------------------------------
    def _example_table(self, rows: int, seed: int = 0) -> Table:
        """Request-like data the model can run on (ids 1.., lists of varying length)."""
        rng = np.random.default_rng(seed)
        cols: dict[str, Any] = {}
        caps = [s.get("length") or 4 for s in self.inputs if s["kind"] != "dense"]
        lengths = rng.integers(1, max(min(caps, default=4), 1) + 1, rows)  # aligned lists, as sessions are
        for spec in self.inputs:
            column = spec["column"]
            if column in cols:
                continue
            dtype = np.dtype(spec["dtype"] or "int64") if spec["kind"] != "offsets" else None
            if spec["kind"] == "offsets":
                other = [s for s in self.inputs if s["column"] == column and s["kind"] == "values"]
                dtype = np.dtype((other[0]["dtype"] if other else None) or "int64")
            if spec["kind"] == "dense":
                shape = spec["shape"] or [None]
                tail = tuple(1 if d is None else d for d in shape[1:])
                cols[column] = _example_values(rng, (rows, *tail), dtype)
            else:
                cols[column] = Ragged.from_lengths(_example_values(rng, (int(lengths.sum()),), dtype), lengths)
        return Table(cols, num_rows=rows)

    def _probe_outputs(self) -> list[dict[str, Any]]:
        missing = [s["column"] for s in self.inputs if s["kind"] == "padded" and not s.get("length")]
        if missing:
            raise SchemaError(
                f"{self.label}: list input(s) {missing} need a fixed padded length: pass max_sequence_length=..., an "
                "input_schema whose column has value_count.max, or output_schema (then the length comes from the "
                "graph's column at build time)"
            )
        try:
            raw = self._run_raw(self._feeds(self._example_table(3)))
            outs = self._flatten(raw)
        except Exception as exc:
            raise SchemaError(
                f"{self.label}: running the model on example inputs {[s['name'] for s in self.inputs]} failed "
                f"({type(exc).__name__}: {exc}); pass input_schema (names, dtypes, list columns) and output_schema"
            ) from exc
        if isinstance(raw, Mapping):
            names = [str(k) for k in raw]
        else:
            names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
        return [{"name": n, "dtype": dtype_name(t.dtype), "shape": [None, *t.shape[1:]]} for n, t in zip(names, outs, strict=True)]

    def _outputs_from(self, schema: Schema) -> list[dict[str, Any]]:
        return [{"name": c.name, "dtype": c.dtype, "shape": [None, *(c.dims or ())]} for c in schema]

    def _check_top_k(self) -> None:
        if self.top_k is None:
            if self.exclude_seen or self.has_mapping:
                raise SchemaError(f"{self.label}: exclude_seen and id_mapping need top_k=k")
            return
        if len(self.outputs) != 1 or len(self.outputs[0]["shape"]) != 2:
            raise SchemaError(
                f"{self.label}: top_k needs one (B, n_items) logits output; the model returns "
                f"{[(o['name'], o['shape']) for o in self.outputs]}"
            )
        n_items = self.outputs[0]["shape"][1]
        if n_items is not None and self.top_k > n_items:
            raise SchemaError(f"{self.label}: top_k={self.top_k} is more than the model's {n_items} items")
        if self.exclude_seen and (self.item_id_column is None or self.item_id_column not in self.columns):
            raise SchemaError(
                f"{self.label}: exclude_seen=True needs item_id_column= naming the session's item list column among "
                f"the model's input columns {self.columns}"
            )
        if self._mapping_np is not None and n_items is not None and self._mapping_np.shape[0] < n_items:
            raise SchemaError(
                f"{self.label}: id_mapping has {self._mapping_np.shape[0]} entries but the model scores {n_items} "
                "items; pass the mapping of every encoded id (index = encoded id)"
            )

    def _set_mapping(self, mapping: Any) -> None:
        arr = np.asarray(mapping)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise SchemaError(
                f"{self.label}: id_mapping must be a 1-d integer array (index = encoded id, value = raw id); got "
                f"dtype {arr.dtype}, shape {arr.shape}"
            )
        self._mapping_np = cast_lossless(arr, "int64", column="id_mapping", where=self.label)
        self._mapping = None

    # -- schema -----------------------------------------------------------------------
    def compute_output_schema(self, input_schema: Schema) -> Schema:
        for spec in self.inputs:
            (col,) = self.require(input_schema, [spec["column"]])
            where = f"{self.label}: input column {col.name!r} (model input {spec['name']!r})"
            kind = spec["kind"]
            if kind in ("values", "offsets", "padded") and not col.is_list:
                raise SchemaError(
                    f"{where} is {col!r}, not a list column; the model takes it as "
                    f"{'values + offsets' if kind != 'padded' else 'a padded (B, length) tensor'}"
                )
            if kind == "dense" and col.is_list:
                raise SchemaError(
                    f"{where} is a list column {col!r} but the model takes one value per row; pass "
                    "max_sequence_length=... (padded lists) or input_schema marking it as a list, or export the model "
                    "with <name>__values/<name>__offsets inputs"
                )
            if kind == "dense" and spec["shape"] is not None:
                want_dims = tuple(spec["shape"][1:])
                have = tuple(col.dims)
                same = have in ((), (1,)) and want_dims in ((), (1,)) or (
                    len(have) == len(want_dims) and all(w is None or w == h for w, h in zip(want_dims, have, strict=True))
                )
                if not same:
                    raise SchemaError(
                        f"{where} has per-row shape {have} but the model takes {want_dims} per row; if it is a list "
                        "column to pad, pass max_sequence_length={column: length} (or an input_schema marking it as "
                        "a list), else reshape it upstream"
                    )
            if kind == "padded" and not spec.get("length"):
                length = _list_length(col)
                if length is None:
                    raise SchemaError(
                        f"{where} is a variable-length list and the model takes it padded, but no fixed length is "
                        "known; pass max_sequence_length=... or give the column a value_count.max property"
                    )
                spec["length"] = length
            want = spec["dtype"]
            if kind != "offsets" and want is not None and col.dtype != want:
                if col.dtype == "str" or want == "str" or not check_castable(col.numpy_dtype, np.dtype(want)):
                    raise SchemaError(f"{where} has dtype {col.dtype} but the model takes {want}; cast it upstream")
        if self.top_k is not None:
            return Schema([
                ColumnSchema(TOPK_SCORES, "float32", dims=(None,), tags=["score"]),
                ColumnSchema(TOPK_IDS, "int64", dims=(None,), tags=["item_id", "candidates"]),
            ])
        return Schema(
            ColumnSchema(o["name"], o["dtype"], dims=_output_dims(o["shape"]), is_list=False) for o in self.outputs
        )

    # -- running ----------------------------------------------------------------------
    def transform(self, table: Table) -> Table:
        if self._model is None:
            raise ArtifactError(f"{self.label}: no model loaded; call load_artifacts(directory) first")
        rows = table.num_rows
        if rows == 0:
            return self._empty()
        feeds = self._feeds(table)
        outs = self._call(feeds)
        if self.top_k is None:
            cols = {}
            for spec, t in zip(self.outputs, outs, strict=True):
                if t.ndim == 2 and t.shape[1] == 1 and _output_dims(spec["shape"]) == ():
                    t = t[:, 0]
                cols[spec["name"]] = _from_torch(t)
            return Table._derived(cols, rows) if all(c.shape[0] == rows for c in cols.values()) else Table(cols, num_rows=rows)
        return self._top_k(outs[0], feeds, table, rows)

    def _top_k(self, logits: Any, feeds: dict[str, Any], table: Table, rows: int) -> Table:
        torch = _torch()
        k = self.top_k
        assert k is not None
        scores = logits if logits.dtype == torch.float32 else logits.float()
        if self.exclude_seen:
            scores = scores.clone()
            seen = table[self.item_id_column]
            n_items = scores.shape[1]
            if isinstance(seen, Ragged):
                ids = self._to_torch(seen.values).to(torch.int64)
                offsets = self._to_torch(seen.offsets).to(torch.int64)
                row_ids = torch.repeat_interleave(torch.arange(rows, device=ids.device), offsets[1:] - offsets[:-1])
            else:
                dense = self._to_torch(seen).to(torch.int64)
                row_ids = torch.arange(rows, device=dense.device).repeat_interleave(dense.shape[1])
                ids = dense.reshape(-1)
            keep = (ids >= 0) & (ids < n_items)
            scores[row_ids[keep], ids[keep]] = float("-inf")
        top_scores, top_ids = torch.topk(scores, k, dim=1)
        if self._mapping_np is not None:
            if self._mapping is None or self._mapping.device != top_ids.device:
                self._mapping = torch.from_numpy(self._mapping_np).to(top_ids.device)
            top_ids = self._mapping[top_ids]
        if top_ids.is_cuda:
            out_off = _from_torch(torch.arange(0, (rows + 1) * k, k, dtype=torch.int64, device=top_ids.device))
        else:
            out_off = np.arange(0, (rows + 1) * k, k, dtype=np.int64)
        return Table._derived(
            {
                TOPK_SCORES: Ragged(_from_torch(top_scores.reshape(-1)), out_off, validate=False),
                TOPK_IDS: Ragged(_from_torch(top_ids.reshape(-1)), out_off, validate=False),
            },
            rows,
        )

    def _empty(self) -> Table:
        if self.top_k is not None:
            off = np.zeros(1, np.int64)
            return Table(
                {
                    TOPK_SCORES: Ragged(np.zeros(0, np.float32), off, validate=False),
                    TOPK_IDS: Ragged(np.zeros(0, np.int64), off, validate=False),
                },
                num_rows=0,
            )
        return Table(
            {o["name"]: np.zeros((0, *[d or 0 for d in _output_dims(o["shape"])]), dtype=o["dtype"]) for o in self.outputs},
            num_rows=0,
        )

    # -- config and artifacts -----------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "format": self.format if self.format != "module" else self.export_format,
            "call": self.call,
            "inputs": [dict(s) for s in self.inputs],
            "outputs": [dict(o) for o in self.outputs],
            "device": self.device,
        }
        for key in ("top_k", "item_id_column", "truncate", "intra_op_threads"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        if self.exclude_seen:
            config["exclude_seen"] = True
        if self.has_mapping:
            config["id_mapping"] = MAPPING_FILE
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PredictPyTorch:
        op = cls.__new__(cls)
        op.format = config["format"]
        op.export_format = op.format
        op.call = config["call"]
        op.inputs = [dict(s) for s in config["inputs"]]
        op.outputs = [dict(o) for o in config["outputs"]]
        op.device = config.get("device", "cpu")
        op.top_k = config.get("top_k")
        op.item_id_column = config.get("item_id_column")
        op.truncate = config.get("truncate")
        op.intra_op_threads = config.get("intra_op_threads")
        op.exclude_seen = bool(config.get("exclude_seen", False))
        op.has_mapping = bool(config.get("id_mapping"))
        op.rowwise = not any(s["kind"] != "dense" for s in op.inputs)  # type: ignore[misc]
        op._model = op._module = op._source = None
        op._mapping_np = op._mapping = None
        op._device = op.device
        return op

    @property
    def artifact_name(self) -> str:
        """``model.pt`` (TorchScript) or ``model.pt2`` (torch.export)."""
        fmt = self.format if self.format != "module" else self.export_format
        return EXPORT_FILE if fmt == "export" else TORCHSCRIPT_FILE

    def save_artifacts(self, directory: Path) -> None:
        """Write ``model.pt``/``model.pt2`` (an nn.Module is traced or exported here) and the id mapping."""
        directory = Path(directory)
        target = directory / self.artifact_name
        if self._source is not None:
            if target.resolve() != self._source.resolve():
                shutil.copyfile(self._source, target)
        elif self._model is None:
            raise ArtifactError(f"{self.label}: no model loaded, nothing to save; call load_artifacts first")
        else:
            self._write_model(target)
        if self._mapping_np is not None:
            np.save(directory / MAPPING_FILE, self._mapping_np, allow_pickle=False)

    def _write_model(self, target: Path) -> None:
        torch = _torch()
        if self.format == "torchscript":
            self._model.save(str(target))
            return
        if self.format == "export" and self._module is None:
            program = getattr(self, "_program", None)
            if program is None:
                raise ArtifactError(f"{self.label}: the ExportedProgram is gone; build the operator again")
            torch.export.save(program, str(target))
            return
        module = self._module
        example = self._feeds(self._example_table(3, seed=2))
        args = (dict(example),) if self.call == "dict" else tuple(example[s["name"]] for s in self.inputs)
        try:
            if self.export_format == "export":
                dyn = torch.export.Dim.AUTO
                shapes = [{i: dyn for i in range(t.ndim)} for t in (example[s["name"]] for s in self.inputs)]
                if self.call == "dict":
                    spec: Any = ({s["name"]: sh for s, sh in zip(self.inputs, shapes, strict=True)},)
                else:
                    spec = tuple(shapes)
                program = torch.export.export(module, args, dynamic_shapes=spec)
                torch.export.save(program, str(target))
                check = program.module()
            else:
                with torch.inference_mode(False), torch.no_grad():
                    traced = torch.jit.trace(module, args, strict=False, check_trace=False)
                traced.save(str(target))
                check = traced
        except Exception as exc:
            raise ArtifactError(
                f"{self.label}: exporting the {type(module).__name__} with "
                f"{'torch.export' if self.export_format == 'export' else 'torch.jit.trace'} failed: {exc}. "
                "Export it yourself and pass the .pt/.pt2 file"
            ) from exc
        # the file must compute what the module computes, on another batch size too
        other = self._feeds(self._example_table(5, seed=3))
        other_args = (dict(other),) if self.call == "dict" else tuple(other[s["name"]] for s in self.inputs)
        with torch.inference_mode():
            want = self._flatten(module(*other_args))
            got = self._flatten(check(*other_args))
        for w, g in zip(want, got, strict=True):
            if w.shape != g.shape or not torch.allclose(w.float(), g.float(), rtol=1e-4, atol=1e-5):
                raise ArtifactError(
                    f"{self.label}: the {self.export_format} export of {type(module).__name__} computes other results "
                    "than the module on a batch of another size (shape-dependent Python code was frozen by tracing?); "
                    "use export_format='export' or export it yourself"
                )

    def load_artifacts(self, directory: Path) -> None:
        """Load the model file once (on ``device``) and the id mapping."""
        directory = Path(directory)
        configure_torch(self.intra_op_threads)
        self._device = resolve_device(self.device)
        path = directory / self.artifact_name
        fmt, self._model, _ = load_model(path, self._device)
        self.format = fmt
        self._source = path
        if self.has_mapping:
            mapping = directory / MAPPING_FILE
            if not mapping.is_file():
                raise ArtifactError(f"{self.label}: {mapping} not found; the graph's artifacts are incomplete")
            self._mapping_np = np.load(mapping, allow_pickle=False)
            self._mapping = None

    # -- Triton ensemble mode ------------------------------------------------------------
    def native_triton_model(self) -> NativeTritonModel | None:
        """Triton's ``pytorch_libtorch`` backend for a plain TorchScript model (no top-k, no padding)."""
        from funnel_torch.native import native_model  # noqa: PLC0415

        return native_model(self)

    def write_native_model(self, version_dir: Path) -> None:
        """Write ``version_dir/model.pt`` (the TorchScript file) for ``pytorch_libtorch``."""
        from funnel_torch.native import write_native_model  # noqa: PLC0415

        write_native_model(self, Path(version_dir))


def load_model_program(program: Any, device: str) -> Any:
    from torch.export.passes import move_to_device_pass  # noqa: PLC0415

    return move_to_device_pass(program, device).module()


def _example_values(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "iu":
        return rng.integers(1, 4, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    return rng.random(shape).astype(dtype)


def _output_dims(shape: list[Any]) -> tuple[Any, ...]:
    dims = tuple(shape[1:])
    return () if dims == (1,) else dims


def _from_torch(t: Any) -> Any:
    """A torch tensor as numpy (CPU, zero-copy) or cupy (CUDA, zero-copy through DLPack)."""
    t = t.contiguous()
    if t.is_cuda:
        cupy = sys.modules.get("cupy")
        if cupy is None:
            try:
                import cupy  # noqa: PLC0415
            except ImportError:
                return t  # no cupy: the column stays a torch CUDA tensor
        return cupy.from_dlpack(t)
    return t.numpy()
