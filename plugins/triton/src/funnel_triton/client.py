"""Client helpers: Table/DataFrame/dict → Triton inputs, responses → Table (HTTP or gRPC)."""

from __future__ import annotations

from typing import Any

import numpy as np

from funnel.casting import cast_lossless
from funnel.errors import RequestError, SchemaError, ServerError
from funnel.table import Ragged, Table
from funnel.triton.wire import (
    LENGTHS,
    OFFSETS,
    OUTPUT_PREFIX,
    REQUEST,
    ROWS,
    VALUES,
    bytes_to_text,
    encode_table,
    funnel_dtype,
    triton_dtype,
)

__all__ = ["make_client", "table_to_inputs", "response_to_table", "infer", "cast_to_model"]

def _module(protocol: str) -> Any:
    try:
        if protocol == "http":
            import tritonclient.http as mod  # noqa: PLC0415
        elif protocol == "grpc":
            import tritonclient.grpc as mod  # noqa: PLC0415
        else:
            raise ValueError(f"protocol must be 'http' or 'grpc', got {protocol!r}")
    except ImportError as exc:
        raise ServerError(f'tritonclient is not installed: pip install "funnel[triton]" ({exc})') from exc
    return mod


def make_client(url: str, protocol: str = "http", concurrency: int = 1) -> Any:
    """A tritonclient ``InferenceServerClient`` for ``url`` (``host:port``)."""
    mod = _module(protocol)
    if protocol == "http":
        return mod.InferenceServerClient(url, concurrency=concurrency)
    return mod.InferenceServerClient(url)


def table_to_inputs(data: Any, protocol: str = "http", schema: Any = None, form: str = REQUEST) -> list[Any]:
    """``InferInput`` objects for a Table, dict of columns or DataFrame (ragged lists included),
    in wire ``form`` (``"request"`` or ``"rows"``, see docs/serving.md)."""
    mod = _module(protocol)
    table = Table.from_any(data, schema=schema)
    inputs = []
    for name, arr in encode_table(table.to_numpy(), schema, form=form).items():
        arr = np.ascontiguousarray(arr)
        try:
            dtype = triton_dtype("str" if arr.dtype == object else arr.dtype.name)
        except SchemaError:
            raise RequestError(f"column for tensor {name!r} has dtype {arr.dtype}, which Triton cannot carry") from None
        inp = mod.InferInput(name, list(arr.shape), dtype)
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    return inputs


def response_to_table(result: Any, output_names: list[str] | None = None, form: str = REQUEST) -> Table:
    """A Table from a tritonclient result; ``<col>__values``/``<col>__offsets`` (request form)
    and ``<col>`` + ``<col>__lengths`` (rows form) become Ragged."""
    if output_names is None:
        resp = result.get_response()
        outputs = resp["outputs"] if isinstance(resp, dict) else resp.outputs
        output_names = [o["name"] if isinstance(o, dict) else o.name for o in outputs]
    if form == ROWS:
        return _rows_response(result, output_names)
    columns: dict[str, Any] = {}
    for name in output_names:
        if name.endswith(OFFSETS):
            continue
        arr = result.as_numpy(name)
        if arr is None:
            raise ServerError(f"the response has no tensor {name!r}")
        arr = bytes_to_text(arr)  # BYTES tensors arrive as bytes; string columns hold str
        col = name[len(OUTPUT_PREFIX):] if name.startswith(OUTPUT_PREFIX) else name
        if name.endswith(VALUES):
            offsets = result.as_numpy(name[: -len(VALUES)] + OFFSETS)
            columns[col[: -len(VALUES)]] = Ragged(arr[0], offsets[0].astype(np.int64))
        else:
            columns[col] = arr[0]
    return Table(columns)


def _rows_response(result: Any, output_names: list[str]) -> Table:
    names = set(output_names)
    columns: dict[str, Any] = {}
    for name in output_names:
        if name.endswith(LENGTHS) and name[: -len(LENGTHS)] in names:
            continue
        arr = result.as_numpy(name)
        if arr is None:
            raise ServerError(f"the response has no tensor {name!r}")
        arr = bytes_to_text(arr)
        if name + LENGTHS in names:
            lengths = result.as_numpy(name + LENGTHS).reshape(-1)
            columns[name] = Ragged.from_dense(arr, lengths)
        elif arr.ndim == 2 and arr.shape[1] == 1:
            columns[name] = arr[:, 0]  # one value per row, sent as [B, 1]
        else:
            columns[name] = arr
    return Table(columns)


def _input_spec(client: Any, model: str) -> tuple[dict[str, str], set[str]]:
    """The model's request columns: name → funnel dtype, and the names of list columns."""
    meta = client.get_model_metadata(model)
    inputs = meta["inputs"] if isinstance(meta, dict) else meta.inputs
    dtypes: dict[str, str] = {}
    ragged: set[str] = set()
    for inp in inputs:
        name = inp["name"] if isinstance(inp, dict) else inp.name
        datatype = inp["datatype"] if isinstance(inp, dict) else inp.datatype
        if name.endswith(OFFSETS):
            continue
        if name.endswith(VALUES):
            name = name[: -len(VALUES)]
            ragged.add(name)
        dtypes[name] = funnel_dtype(datatype) or "str"
    return dtypes, ragged


def _conform(table: Table, dtypes: dict[str, str], ragged: set[str]) -> Table:
    """``table`` in the representation and dtypes the model declares, by the one lossless
    casting rule (funnel.casting); a column that cannot be sent raises RequestError naming it."""
    out: dict[str, Any] = {}
    for name, col in table.items():
        want = dtypes.get(name)
        if name in ragged and not isinstance(col, Ragged):
            arr = np.asarray(col)
            if arr.ndim < 2:
                raise RequestError(
                    f"column {name!r} must hold a list per row (the model takes it as a list column), got "
                    f"{arr.dtype} scalars; CSV cannot carry lists: send the rows as JSON, JSONL or parquet"
                )
            col = Ragged.from_dense(arr)
        if name not in ragged and isinstance(col, Ragged):
            raise RequestError(f"column {name!r} must hold one value per row, got lists")
        if want is None:
            out[name] = col
            continue
        if isinstance(col, Ragged):
            values = np.asarray(col.values)
            if want == "str":
                if values.size and values.dtype.kind not in "OUS":
                    raise RequestError(f"column {name!r} must hold strings, got {values.dtype}")
                out[name] = Ragged(values.astype(object), col.offsets)
            else:
                out[name] = Ragged(cast_lossless(_numeric(values, name), want, column=name, error=RequestError), col.offsets)
        else:
            arr = np.asarray(col)
            if want == "str":
                if arr.dtype.kind not in "OUS":
                    raise RequestError(f"column {name!r} must hold strings, got {arr.dtype}")
                out[name] = arr.astype(object)
            else:
                out[name] = cast_lossless(_numeric(arr, name), want, column=name, error=RequestError)
    return Table(out, num_rows=table.num_rows)


def _numeric(arr: np.ndarray, name: str) -> np.ndarray:
    """An object column of Python numbers (JSON rows) as a numeric array; strings are refused."""
    if arr.dtype.kind not in "OUS":
        return arr
    if arr.size and any(isinstance(v, (str, bytes)) for v in arr.ravel()[:1000]):
        sample = next(v for v in arr.ravel() if isinstance(v, (str, bytes)))
        raise RequestError(
            f"column {name!r} holds strings (e.g. {sample!r}) where the model takes numbers; send numeric ids"
        )
    try:
        return np.asarray(arr.tolist())
    except (TypeError, ValueError) as exc:
        raise RequestError(f"column {name!r} holds values that are not numbers: {exc}") from None


def cast_to_model(client: Any, data: Any, model: str = "funnel") -> Table:
    """A Table from ``data`` (DataFrame/dict/Table) with columns in the representation and
    dtypes ``model`` declares (JSON/CSV rows arrive as int64/float64; list fields become list
    columns). Casts are lossless only: a value that does not fit (an id beyond int32), a
    float that is not whole, a string id or a CSV field where a list is expected raises
    RequestError naming the column."""
    dtypes, ragged = _input_spec(client, model)
    return _conform(Table.from_any(data), dtypes, ragged)


def _wire_form_of(client: Any, model: str) -> str:
    """The ``FUNNEL_WIRE_FORM`` parameter of the model's config ("request" when absent)."""
    config = client.get_model_config(model)
    if isinstance(config, dict):  # HTTP
        params = config.get("parameters", {}) or {}
        value = (params.get("FUNNEL_WIRE_FORM") or {}).get("string_value", "")
    else:  # gRPC: ModelConfigResponse
        params = config.config.parameters
        value = params["FUNNEL_WIRE_FORM"].string_value if "FUNNEL_WIRE_FORM" in params else ""
    return value or REQUEST


def _model_info(client: Any, model: str) -> tuple[list[str], str, dict[str, str], set[str]]:
    """Output tensor names, wire form and request columns of ``model``, cached on the client
    object itself (an ``id()``-keyed cache would hand a new client, reusing a collected
    client's id, another server's answers)."""
    cache = getattr(client, "_funnel_model_info", None)
    if cache is None:
        cache = {}
        try:
            client._funnel_model_info = cache
        except AttributeError:  # a client type that takes no attributes: no caching
            pass
    if model not in cache:
        meta = client.get_model_metadata(model)
        outs = meta["outputs"] if isinstance(meta, dict) else meta.outputs
        names = [o["name"] if isinstance(o, dict) else o.name for o in outs]
        dtypes, ragged = _input_spec(client, model)
        cache[model] = (names, _wire_form_of(client, model), dtypes, ragged)
    return cache[model]


def _output_names(client: Any, model: str, protocol: str) -> list[str]:
    """The model's output tensor names (cached, see :func:`_model_info`)."""
    return _model_info(client, model)[0]


def infer(client: Any, data: Any, model: str = "funnel", protocol: str = "http", timeout: float | None = None) -> Any:
    """Send ``data`` to ``model`` and return the result as a Table (DataFrame for a DataFrame).

    A request the server rejects raises RequestError with the server's message.
    """
    mod = _module(protocol)
    try:
        names, form, dtypes, ragged = _model_info(client, model)
    except mod.InferenceServerException as exc:
        raise RequestError(f"model {model!r}: {exc.message()}") from exc
    # the model's representation and dtypes (lossless casts only): a dict of equal-length or
    # all-empty lists is still the list column the model declares
    inputs = table_to_inputs(_conform(Table.from_any(data), dtypes, ragged), protocol, form=form)
    kwargs: dict[str, Any] = {}
    if timeout is not None:
        kwargs["timeout" if protocol == "http" else "client_timeout"] = timeout
    try:
        result = client.infer(model, inputs, **kwargs)
    except mod.InferenceServerException as exc:
        raise RequestError(f"model {model!r} rejected the request: {exc.message()}") from exc
    table = response_to_table(result, names, form=form)
    if type(data).__module__.startswith("pandas"):
        return table.to_pandas()
    return table


