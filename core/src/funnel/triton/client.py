"""Client helpers: Table/DataFrame/dict → Triton inputs, responses → Table (HTTP or gRPC)."""

from __future__ import annotations

from typing import Any

import numpy as np

from funnel.errors import RequestError, SchemaError, ServerError
from funnel.table import Ragged, Table
from funnel.triton.wire import OFFSETS, OUTPUT_PREFIX, VALUES, bytes_to_text, encode_table, funnel_dtype, triton_dtype

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


def table_to_inputs(data: Any, protocol: str = "http", schema: Any = None) -> list[Any]:
    """``InferInput`` objects for a Table, dict of columns or DataFrame (ragged lists included)."""
    mod = _module(protocol)
    table = Table.from_any(data, schema=schema)
    inputs = []
    for name, arr in encode_table(table.to_numpy(), schema).items():
        arr = np.ascontiguousarray(arr)
        try:
            dtype = triton_dtype("str" if arr.dtype == object else arr.dtype.name)
        except SchemaError:
            raise RequestError(f"column for tensor {name!r} has dtype {arr.dtype}, which Triton cannot carry") from None
        inp = mod.InferInput(name, list(arr.shape), dtype)
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    return inputs


def response_to_table(result: Any, output_names: list[str] | None = None) -> Table:
    """A Table from a tritonclient result; ``<col>__values``/``<col>__offsets`` become Ragged."""
    if output_names is None:
        resp = result.get_response()
        outputs = resp["outputs"] if isinstance(resp, dict) else resp.outputs
        output_names = [o["name"] if isinstance(o, dict) else o.name for o in outputs]
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


def cast_to_model(client: Any, data: Any, model: str = "funnel") -> Table:
    """A Table from ``data`` (DataFrame/dict/Table) with columns cast to the dtypes ``model``
    declares (JSON/CSV rows arrive as int64/float64; list fields become ragged columns)."""
    meta = client.get_model_metadata(model)
    inputs = meta["inputs"] if isinstance(meta, dict) else meta.inputs
    dtypes: dict[str, str] = {}
    for inp in inputs:
        name = inp["name"] if isinstance(inp, dict) else inp.name
        datatype = inp["datatype"] if isinstance(inp, dict) else inp.datatype
        if not name.endswith(OFFSETS):
            dtypes[name[: -len(VALUES)] if name.endswith(VALUES) else name] = funnel_dtype(datatype) or "str"
    ragged = {n[: -len(VALUES)] for n in (i["name"] if isinstance(i, dict) else i.name for i in inputs) if n.endswith(VALUES)}
    table = Table.from_any(data)
    out: dict[str, Any] = {}
    for name, col in table.items():
        want = dtypes.get(name)
        if name in ragged and not isinstance(col, Ragged):
            col = Ragged.from_dense(np.asarray(col))
        if want is None or want == "str":
            out[name] = col
        elif isinstance(col, Ragged):
            out[name] = Ragged(np.asarray(col.values).astype(want), col.offsets)
        else:
            out[name] = np.asarray(col).astype(want)
    return Table(out, num_rows=table.num_rows)


def _output_names(client: Any, model: str, protocol: str) -> list[str]:
    """The model's output tensor names, cached on the client object itself (an ``id()``-keyed
    cache would hand a new client, reusing a collected client's id, another server's names)."""
    cache = getattr(client, "_funnel_output_names", None)
    if cache is None:
        cache = {}
        try:
            client._funnel_output_names = cache
        except AttributeError:  # a client type that takes no attributes: no caching
            pass
    if model not in cache:
        meta = client.get_model_metadata(model)
        outs = meta["outputs"] if isinstance(meta, dict) else meta.outputs
        cache[model] = [o["name"] if isinstance(o, dict) else o.name for o in outs]
    return cache[model]


def infer(client: Any, data: Any, model: str = "funnel", protocol: str = "http", timeout: float | None = None) -> Any:
    """Send ``data`` to ``model`` and return the result as a Table (DataFrame for a DataFrame).

    A request the server rejects raises RequestError with the server's message.
    """
    inputs = table_to_inputs(data, protocol)
    mod = _module(protocol)
    names = _output_names(client, model, protocol)
    kwargs: dict[str, Any] = {}
    if timeout is not None:
        kwargs["timeout" if protocol == "http" else "client_timeout"] = timeout
    try:
        result = client.infer(model, inputs, **kwargs)
    except mod.InferenceServerException as exc:
        raise RequestError(f"model {model!r} rejected the request: {exc.message()}") from exc
    table = response_to_table(result, names)
    if type(data).__module__.startswith("pandas"):
        return table.to_pandas()
    return table


