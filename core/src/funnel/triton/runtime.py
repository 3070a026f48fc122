"""Code the generated ``model.py`` files import: funnel graphs inside Triton's Python backend.

``ExecutorModel`` runs a whole saved graph; ``OperatorModel`` runs one operator node (ensemble
mode). Tensor I/O goes through DLPack both ways: with numpy 2, the 2.51 stub's ``as_numpy()``
returns wrong data silently and ``pb_utils.Tensor(name, ndarray)`` empty tensors; :func:`self_check`
refuses to serve otherwise. ``triton_python_backend_utils`` is imported only inside the server.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from funnel.errors import FunnelError, OperatorError, RequestError, SchemaError
from funnel.executor import apply_operator, validate_request
from funnel.files import DEFAULT_MAX_REQUEST_ROWS, GRAPH_FILE, OP_FILE
from funnel.schema import Schema
from funnel.table import Table, array_module
from funnel.triton.wire import REQUEST, VALUES, bytes_to_text, decode_table, encode_table, tensor_specs

__all__ = ["ExecutorModel", "OperatorModel", "self_check", "NUMPY2", "client_fault"]

#: a run over at least this many rows hands freed heap memory back to the OS afterwards
_TRIM_ROWS = 1024

NUMPY2 = int(np.__version__.split(".", 1)[0]) >= 2

#: arrays whose values would expose a wrong-data path (the stub returned [1, 1, 1] for [1, 2, 3])
_CHECK_ARRAYS = (
    (np.arange(12, dtype=np.float32).reshape(1, 3, 4) * 1.25 - 3.0),
    np.array([[0, 5, 9, 2**40, -7]], dtype=np.int64),
    np.array([[3, -1, 4, 1, 5, 9, 2]], dtype=np.int32),
    np.linspace(-1, 1, 6, dtype=np.float64).reshape(1, 2, 3),
)


def self_check(to_tensor: Callable[[str, Any], Any], from_tensor: Callable[[Any], Any]) -> None:
    """Round-trip known arrays through the backend's ``to_tensor``/``from_tensor`` at model load;
    raise if anything changes, so a stub/numpy mismatch fails the load instead of serving wrong numbers."""
    for arr in _CHECK_ARRAYS:
        try:
            back = np.asarray(from_tensor(to_tensor("funnel_self_check", arr.copy())))
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(f"funnel self-check: moving a {arr.dtype} tensor through the Python backend failed "
                               f"({type(exc).__name__}: {exc}); numpy {np.__version__}. See docs/serving.md") from exc
        if back.shape != arr.shape or back.dtype != arr.dtype or not np.array_equal(back, arr):
            raise RuntimeError(f"funnel self-check: a {arr.dtype}{list(arr.shape)} tensor came back as "
                               f"{back.dtype}{list(back.shape)} {back.ravel()[:6].tolist()} instead of "
                               f"{arr.ravel()[:6].tolist()}: this Triton Python backend stub corrupts tensors with "
                               f"numpy {np.__version__}. Refusing to serve wrong numbers; use a stub built for "
                               "numpy 2 or a numpy<2 model environment (EXECUTION_ENV_PATH). See docs/serving.md")


def _drop_capsule_reports() -> None:
    """Stop the 2.51 stub's harmless "PyCapsule_GetPointer called with incorrect name" reports (raised through
    ``sys.unraisablehook`` by every ``Tensor.from_dlpack``: about 0.12 ms per output tensor formatting them,
    benchmarks/multistage.py); every other unraisable exception still reaches the previous hook."""
    previous = sys.unraisablehook
    if getattr(previous, "funnel_capsule_filter", False):
        return

    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        if isinstance(exc, ValueError) and "PyCapsule_GetPointer called with incorrect name" in str(exc):
            return
        previous(unraisable)

    hook.funnel_capsule_filter = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


@functools.cache
def _pb() -> Any:
    """``triton_python_backend_utils`` (exists only inside Triton), imported once."""
    import triton_python_backend_utils as pb_utils  # noqa: PLC0415

    return pb_utils


def _read(tensor: Any) -> Any:
    """A backend tensor as a numpy (or, for GPU memory, cupy) array through DLPack."""
    if not tensor.is_cpu():
        import cupy  # noqa: PLC0415

        return cupy.from_dlpack(tensor.to_dlpack())
    # numpy<2: as_numpy(), the API the stub was built for
    return np.from_dlpack(tensor) if NUMPY2 else bytes_to_text(tensor.as_numpy())


def _write(name: str, array: Any) -> Any:
    """A backend tensor from an array through DLPack (contiguous and writeable)."""
    module = array_module(array)
    if module == "numpy":
        array = np.asarray(array)
        if not NUMPY2:  # numpy<2: the API the stub was built for (strings included)
            return _pb().Tensor(name, np.ascontiguousarray(array))
        if not array.flags.c_contiguous or not array.flags.writeable:
            array = np.array(array, copy=True, order="C")
    elif module == "cupy":
        array = sys.modules["cupy"].ascontiguousarray(array)
    else:
        array = array.contiguous()
    return _pb().Tensor.from_dlpack(name, array)


def client_fault(exc: BaseException) -> bool:
    """True when ``exc`` is the client's mistake (a malformed request, a value the graph
    refuses): answered as INVALID_ARG (HTTP 400 / gRPC INVALID_ARGUMENT); else a server fault (500)."""
    client = (RequestError, SchemaError)
    return isinstance(exc, client) or (isinstance(exc, OperatorError) and isinstance(exc.__cause__, client))


def _trim_memory() -> None:
    """Return freed heap pages to the OS (glibc's malloc_trim): large requests otherwise leave
    the stub's resident memory at its peak for good."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim with
        pass


class _FunnelModel:
    """Shared request handling: decode, validate, concatenate, run once, split, respond (subclasses
    set the schemas in ``_load(version_dir)`` and run a table in ``_run(table)``)."""

    input_schema: Schema
    output_schema: Schema
    #: False when an operator changes the row count (Operator.changes_rows): each request of
    #: a dynamic batch then runs alone, so request boundaries survive.
    mergeable: bool = True
    trust_code: bool = False
    max_rows: int = DEFAULT_MAX_REQUEST_ROWS
    model_name: str = "funnel"

    def initialize(self, args: dict[str, Any]) -> None:
        """Triton hook: self-check the tensor path, then load the graph (or operator)."""
        self.model_config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in self.model_config.get("parameters", {}).items()}
        self.device = params.get("FUNNEL_DEVICE", "cpu")
        #: "rows" (Triton's batch convention, executor exports of scalar-only requests) or "request"
        self.wire_form = params.get("FUNNEL_WIRE_FORM", "") or REQUEST
        self.model_name = str(args.get("model_name", "funnel"))
        raw_limit = params.get("FUNNEL_MAX_REQUEST_ROWS", "") or str(DEFAULT_MAX_REQUEST_ROWS)
        try:
            self.max_rows = int(raw_limit)
        except ValueError:
            raise RuntimeError(f"funnel: model {self.model_name!r}: parameter FUNNEL_MAX_REQUEST_ROWS must be an "
                               f"integer, got {raw_limit!r}") from None
        #: the export's trust_code switch, or FUNNEL_TRUST_CODE in the server's environment
        self.trust_code = params.get("FUNNEL_TRUST_CODE", "").lower() in ("1", "true", "yes")
        if self.trust_code:  # one switch for this model's process: plugins (funnel-workflow) read the variable
            os.environ["FUNNEL_TRUST_CODE"] = "1"
        _drop_capsule_reports()
        if NUMPY2:
            self_check(_pb().Tensor.from_dlpack, np.from_dlpack)
        else:
            self_check(_pb().Tensor, lambda t: t.as_numpy())
        try:
            self._load(Path(args["model_repository"]) / args["model_version"])
        except FunnelError as exc:
            raise RuntimeError(f"funnel: model {args['model_name']!r} cannot load: {exc}") from exc
        strings = sorted({c.name for c in (*self.input_schema, *self.output_schema) if c.dtype == "str"})
        if strings and NUMPY2:
            raise RuntimeError(f"funnel: model {args['model_name']!r} has string column(s) {strings}, and string "
                               f"(BYTES) tensors cannot cross this Triton Python backend stub with numpy "
                               f"{np.__version__}. Encode them as integer ids, or give the model a numpy<2 "
                               "environment through the EXECUTION_ENV_PATH parameter (docs/serving.md)")
        self._input_names = [s.name for s in tensor_specs(self.input_schema)]
        self._dtypes = {c.name: c.numpy_dtype for c in self.output_schema}
        gc.collect()
        gc.freeze()  # long-lived model objects out of the collector's sight: cuts tail latency

    @staticmethod
    def _check_request_id(request: Any) -> None:
        """Refuse a request id that is not UTF-8: Triton echoes the id into the JSON response
        unescaped, which would make the answer invalid JSON."""
        try:
            rid = request.request_id()
        except UnicodeDecodeError:
            rid = None
        except Exception:  # noqa: BLE001 - a backend without request ids: nothing to check
            return
        if isinstance(rid, str):
            rid = rid.encode("utf-8", "surrogateescape")
        try:
            if isinstance(rid, bytes):
                rid.decode("utf-8")
        except UnicodeDecodeError:
            rid = None
        if rid is None:
            raise RequestError("the request id is not valid UTF-8 (Triton would echo it raw into the JSON answer); "
                               "send a UTF-8 id")

    def _decode(self, request: Any) -> Table:
        self._check_request_id(request)
        tensors = {}
        for name in self._input_names:
            tensor = _pb().get_input_tensor_by_name(request, name)
            if tensor is not None:
                tensors[name] = _read(tensor)
        self._check_rows(tensors)
        table = decode_table(tensors, self.input_schema, form=self.wire_form)
        if table.num_rows == 0:
            raise RequestError("request has 0 rows; send at least one row")
        if self.max_rows and table.num_rows > self.max_rows:
            raise RequestError(self._too_many(table.num_rows))
        table = validate_request(table, self.input_schema)
        self._check_finite(table)
        return table.to_cupy() if self.device == "gpu" else table

    def _check_finite(self, table: Table) -> None:
        """A served request's float values must be finite: NaN or inf reaching FAISS or a model
        gives meaningless results (and NaN is not valid JSON in the answer)."""
        for column in self.input_schema:
            value = table[column.name]
            arr = value.values if hasattr(value, "offsets") else value
            if column.numpy_dtype.kind != "f" or array_module(arr) != "numpy" or not arr.size:
                continue
            finite = np.isfinite(arr)
            if not finite.all():
                bad = np.asarray(arr).ravel()[~finite.ravel()][0]
                raise RequestError(f"request column {column.name!r} holds {bad} ({int((~finite).sum())} non-finite "
                                   "value(s)); served requests must hold finite numbers")

    def _too_many(self, rows: int) -> str:
        return (f"request has {rows} rows; model {self.model_name!r} accepts at most {self.max_rows} rows per "
                "request (export parameter max_request_rows). Split the request")

    def _check_rows(self, tensors: dict[str, Any]) -> None:
        """Refuse an oversized request from a scalar column's size alone, before decoding:
        a scalar column holds one value per row whatever its wire shape ([B], [B, 1], [1, B])."""
        if not self.max_rows:
            return
        for column in self.input_schema:
            arr = tensors.get(column.name)
            if arr is None or column.is_list or tuple(column.dims or ()):
                continue
            if int(arr.size) > self.max_rows:
                raise RequestError(f"{self._too_many(int(arr.size))} (column {column.name!r}, shape {list(arr.shape)})")
            return

    def _respond(self, table: Table) -> Any:
        out = []
        for name, arr in encode_table(table, self.output_schema, form=self.wire_form).items():
            want = self._dtypes.get(name.removesuffix(VALUES))
            if want is not None and want != object and arr.dtype != want:
                arr = arr.astype(want)
            out.append(_write(name, arr))
        return _pb().InferenceResponse(output_tensors=out)

    @staticmethod
    def _error(exc: BaseException) -> Any:
        """An error response: INVALID_ARG (400) for the client's mistakes, INTERNAL (500) otherwise."""
        pb_utils = _pb()
        msg = str(exc) if isinstance(exc, FunnelError) else f"{type(exc).__name__}: {exc}"
        code = pb_utils.TritonError.INVALID_ARG if client_fault(exc) else pb_utils.TritonError.INTERNAL
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(msg, code))

    def _run_group(self, items: list[tuple[int, Table]], responses: list[Any]) -> None:
        """Run requests merged; answer each exactly once. After a failing merged run (logged), a client fault
        re-runs each request alone once, so the failing one gets its own 400; a server fault answers every
        request with that error, not re-run (that would repeat every side effect and random draw)."""
        try:
            if len(items) == 1:
                outs = [self._run(items[0][1])]
            else:
                outs = self._run(Table.concat([t for _, t in items])).split([t.num_rows for _, t in items])
            answered = [self._respond(part) for part in outs]
        except Exception as exc:  # noqa: BLE001 - becomes error responses, never swallowed
            isolate = len(items) > 1 and client_fault(exc)
            if len(items) > 1:
                message = (f"funnel: model {self.model_name!r}: a merged batch of {len(items)} requests failed "
                           f"({type(exc).__name__}: {exc}); "
                           + ("running each request alone once to isolate the failing one" if isolate else
                              "a server fault: every request of the batch gets this error (not re-run)"))
                try:
                    _pb().Logger.log_warn(message)
                except Exception:  # noqa: BLE001 - logging must never fail a request
                    print(message, file=sys.stderr, flush=True)
            for item in items:
                if isolate:
                    self._run_group([item], responses)
                else:
                    responses[item[0]] = self._error(exc)
            return
        for (i, _), response in zip(items, answered):
            responses[i] = response

    def execute(self, requests: list[Any]) -> list[Any]:
        """Triton hook: one response per request; bad requests get their own error."""
        responses: list[Any] = [None] * len(requests)
        ok: list[tuple[int, Table]] = []
        for i, request in enumerate(requests):
            try:
                ok.append((i, self._decode(request)))
            except Exception as exc:  # noqa: BLE001 - becomes this request's error response
                responses[i] = self._error(exc)
        # when an operator changes row counts, every request runs alone
        for group in [ok] if ok and self.mergeable else [[item] for item in ok]:
            self._run_group(group, responses)
        if sum(t.num_rows for _, t in ok) >= _TRIM_ROWS:
            _trim_memory()
        return responses


class ExecutorModel(_FunnelModel):
    """Executor mode: the whole graph saved in the model version directory."""

    def _load(self, version_dir: Path) -> None:
        from funnel.ensemble import Ensemble  # noqa: PLC0415
        from funnel.triton.config import check_model_config  # noqa: PLC0415 - graph vs config.pbtxt

        self.ensemble = Ensemble.load(version_dir, trust_code=self.trust_code or None)
        self.input_schema, self.output_schema = self.ensemble.input_schema, self.ensemble.output_schema
        self.mergeable = not any(getattr(b.node.op, "changes_rows", False) for b in self.ensemble.graph.nodes)
        if getattr(self, "model_config", None) is not None:
            check_model_config(self.model_config, self.input_schema, self.output_schema, self.wire_form,
                               where=f"model {self.model_name!r} (config.pbtxt vs {version_dir / GRAPH_FILE})")

    def _run(self, table: Table) -> Table:
        return self.ensemble._executor.transform(table, validate=False)


class OperatorModel(_FunnelModel):
    """Ensemble mode: one operator node, rebuilt from ``funnel-op.json`` and its artifacts."""

    def _load(self, version_dir: Path) -> None:
        from funnel.ensemble import load_operator  # noqa: PLC0415

        doc = json.loads((version_dir / OP_FILE).read_text())
        type_name = doc["op"]["type"]
        hint = (doc.get("operators", {}).get(type_name) or {}).get("distribution")
        self.op = load_operator(type_name, doc["op"]["config"], version_dir / "artifacts", distribution=hint,
                                trust_code=self.trust_code or None)
        self.input_schema, self.output_schema = (Schema.from_dict(doc[k]) for k in ("input_schema", "output_schema"))
        self.lifted = bool(doc["lifted"])
        self.mergeable = not getattr(self.op, "changes_rows", False)
        self._out_names = self.output_schema.column_names

    def _run(self, table: Table) -> Table:
        return apply_operator(self.op, table, self.lifted, self._out_names)
