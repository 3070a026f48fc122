"""Bad-request battery: every kind of malformed request gets an answer with the right status
(400 for the client's mistakes, never a 500 or a dropped connection), and good requests sent
right after return exactly what they returned before (tests/reliability/conftest.py serves)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


from .conftest import LISTS, MULTISTAGE, MULTISTAGE_ENS, Reply, infer_body, json_inputs, post, record
from .graphs import lists_request, multistage_request

DTYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]
REQUESTS = {MULTISTAGE: multistage_request, MULTISTAGE_ENS: multistage_request, LISTS: lists_request}
GRAPH_OF = {MULTISTAGE: MULTISTAGE, MULTISTAGE_ENS: MULTISTAGE, LISTS: LISTS}


@dataclass
class Case:
    model: str
    name: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    #: "400": refused as the client's mistake; "200": served, equal to in-process on ``table``;
    #: "parse": a body Triton's HTTP frontend cannot parse: Triton itself answers, 400 or 500
    #: (its JSON parser reports 500: Triton's choice, documented in docs/reliability.md)
    expect: str = "400"
    table: object = None
    #: text the error message must contain (the column / tensor it is about)
    mentions: str | None = None


def _good(model: str, rows: int = 3, seed: int = 1):
    table = REQUESTS[model](rows, seed=seed)
    return table, json_inputs(table, table_schema(model))


def table_schema(model: str):
    from .graphs import MULTISTAGE_REQUEST
    from funnel_testing import REQUEST_SCHEMA

    return MULTISTAGE_REQUEST if GRAPH_OF[model] == MULTISTAGE else REQUEST_SCHEMA


def _as_dtype(data: list, dtype: str) -> list:
    if dtype == "BOOL":
        return [bool(v) for v in data]
    if dtype == "BYTES":
        return [str(v) for v in data]
    if dtype.startswith(("INT", "UINT")):
        return [abs(int(v)) % 100 for v in data]
    return [float(v) for v in data]


def _replace(inputs: list[dict], name: str, **changes) -> list[dict]:
    return [dict(i, **changes) if i["name"] == name else dict(i) for i in inputs]


def _binary(inputs: list[dict], lie: Callable[[dict, bytes], tuple[dict, bytes, int | str]] | None = None):
    """A binary-tensor request: JSON header + raw bytes; ``lie`` may corrupt the sizes."""
    head = {"inputs": []}
    raw = b""
    np_types = {"INT64": np.int64, "FP32": np.float32}
    for i in inputs:
        data = np.asarray(i["data"], dtype=np_types[i["datatype"]]).tobytes()
        head["inputs"].append({"name": i["name"], "shape": i["shape"], "datatype": i["datatype"],
                               "parameters": {"binary_data_size": len(data)}})
        raw += data
    length: int | str = 0
    header = json.dumps(head).encode()
    length = len(header)
    if lie is not None:
        head, raw, length = lie(head, raw, length)
        header = json.dumps(head).encode()
    return header + raw, {"Inference-Header-Content-Length": str(length), "Content-Type": "application/octet-stream"}


def build_cases() -> list[Case]:
    cases: list[Case] = []
    for model in (MULTISTAGE, MULTISTAGE_ENS, LISTS):
        table, good = _good(model)
        names = [i["name"] for i in good]
        add = cases.append
        # -- the body itself
        for label, body, expect in [
            ("empty body", b"", "400"), ("body '{'", b"{", "parse"), ("body '[]'", b"[]", "parse"),
            ("body 'null'", b"null", "parse"), ("inputs is a number", b'{"inputs": 5}', "parse"),
            ("inputs holds an empty object", b'{"inputs": [{}]}', "400"),
            ("non-UTF-8 bytes as the body", b"\xff\xfe\x00garbage", "parse"),
            ("truncated JSON", infer_body(good)[:-7], "parse"),
            ("NaN literal in data", infer_body(good).replace(b'"data": [', b'"data": [NaN, ', 1), "parse"),
            ("negative dim in shape", infer_body(_replace(good, good[0]["name"], shape=[1, -3])), "parse"),
            ("data shorter than its shape", infer_body(_replace(good, good[0]["name"], data=good[0]["data"][:-1])), "parse"),
            ("data longer than its shape",
             infer_body(_replace(good, good[0]["name"], data=good[0]["data"] + good[0]["data"][:1])), "parse"),
            ("no inputs at all", b'{"inputs": []}', "400"),
        ]:
            add(Case(model, label, body, expect=expect))
        # -- inputs missing, extra, duplicated
        for n in names:
            add(Case(model, f"input {n} missing", infer_body([i for i in good if i["name"] != n]), mentions=n))
        add(Case(model, "an extra input 'bogus'", infer_body(good + [dict(good[0], name="bogus")]), mentions="bogus"))
        add(Case(model, f"input {names[0]} sent twice", infer_body(good + [good[0]])))
        # -- every wrong dtype of every tensor (multistage executor), two per tensor elsewhere
        for spec in good:
            wrong = [d for d in DTYPES if d != spec["datatype"]]
            for dtype in wrong if model == MULTISTAGE else wrong[:2]:
                body = infer_body(_replace(good, spec["name"], datatype=dtype, data=_as_dtype(spec["data"], dtype)))
                add(Case(model, f"{spec['name']} as {dtype}", body, mentions=spec["name"]))
        # -- shapes that disagree with the data or are impossible
        first = good[0]
        n0 = first["name"]
        for label, shape in [("zero rows", [1, 0]), ("shape [0]", [0]), ("3-D shape", [1, len(first["data"]), 1, 1])]:
            add(Case(model, f"{n0} {label}", infer_body(_replace(good, n0, shape=shape))))
        add(Case(model, f"{n0} leading dimension 2 (two request tables)",
                 infer_body(_replace(good, n0, shape=[2, len(first["data"])], data=first["data"] * 2))))
        # -- ragged columns whose offsets lie
        for spec in good:
            if not spec["name"].endswith("__offsets"):
                continue
            off = spec["data"]
            col = spec["name"][: -len("__offsets")]
            nvals = off[-1]
            for label, bad in [("not starting at 0", [1, *off[1:]]), ("decreasing", [0, nvals, *off[2:-1], 0]),
                               ("ending past the values", [*off[:-1], nvals + 5]), ("negative", [0, -2, *off[2:]]),
                               ("one offset short (row count mismatch)", off[:-1])]:
                bad_in = _replace(good, spec["name"], data=bad, shape=[1, len(bad)])
                add(Case(model, f"{spec['name']} {label}", infer_body(bad_in), mentions=col))
        # -- too many rows (the default limit is 4096 rows per request)
        big, big_in = _good(model, rows=4097, seed=3)
        add(Case(model, "4,097 rows (limit 4,096)", infer_body(big_in), mentions="at most 4096 rows"))
        # -- binary tensor data whose headers lie about sizes
        if model != LISTS:
            add(Case(model, "binary request, correct sizes", *_binary(good), expect="200", table=table))
            add(Case(model, "binary: header length past the body", *_binary(good, lambda h, r, n: (h, r, n + 10_000))))
            add(Case(model, "binary: header length cuts the JSON", *_binary(good, lambda h, r, n: (h, r, n - 5)),
                     expect="parse"))
            add(Case(model, "binary: header length not a number", *_binary(good, lambda h, r, n: (h, r, "ten"))))
            add(Case(model, "binary: header length negative", *_binary(good, lambda h, r, n: (h, r, -4))))

            def bigger(h, r, n):
                h["inputs"][0]["parameters"]["binary_data_size"] += 8
                return h, r, n

            def smaller(h, r, n):
                h["inputs"][0]["parameters"]["binary_data_size"] -= 8
                return h, r, n

            add(Case(model, "binary: binary_data_size larger than sent", *_binary(good, bigger)))
            add(Case(model, "binary: binary_data_size smaller than the shape", *_binary(good, smaller)))
            add(Case(model, "binary: 4 bytes missing at the end", *_binary(good, lambda h, r, n: (h, r[:-4], n))))
        # -- values the graph must accept: served equals in-process
        if GRAPH_OF[model] == MULTISTAGE:
            for label, ids in [("negative user ids", [-1, -944, -(2**62)]), ("duplicate user ids", [5, 5, 5]),
                               ("huge user ids", [2**62, 2**40, 0])]:
                t = table.select(table.column_names)
                t = type(t)({**{c: t[c] for c in t.column_names}, "user_id": np.asarray(ids, dtype=np.int64)})
                add(Case(model, label, infer_body(json_inputs(t, table_schema(model))), expect="200", table=t))
            nan = json_inputs(table, table_schema(model))
            q = next(i for i in nan if i["name"] == "query")
            q["data"][0] = 1e39  # overflows float32: inf
            add(Case(model, "query holds inf (1e39 as FP32)", infer_body(nan), mentions="query"))
        else:
            add(Case(model, "empty candidate lists", infer_body(json_inputs(lists_request(2, seed=9), table_schema(model))),
                     expect="200", table=lists_request(2, seed=9)))
        add(Case(model, "request id with non-ASCII text", infer_body(good, id="\u00e9\u00e8-\u6f22"), expect="200", table=table))
        add(Case(model, "request asks for an output that does not exist",
                 infer_body(good, outputs=[{"name": "no_such_output"}]), mentions="no_such_output"))
        add(Case(model, "unknown parameters block", infer_body(good, parameters={"funnel_bogus": 1}), expect="200", table=table))
    return cases


CASES = build_cases()


def _expected_status(case: Case) -> tuple[int, ...]:
    return {"200": (200,), "400": (400,), "parse": (400, 500)}[case.expect]


@pytest.fixture(scope="module")
def baseline(server, graphs):
    """Good requests and their answers before the battery."""
    out = {}
    for model in (MULTISTAGE, MULTISTAGE_ENS, LISTS):
        table = REQUESTS[model](5, seed=42)
        out[model] = (table, server.infer(table, model=model))
    return out


def test_battery_has_at_least_100_kinds():
    assert len({(c.model, c.name) for c in CASES}) == len(CASES) >= 100


@pytest.mark.parametrize("model", [MULTISTAGE, MULTISTAGE_ENS, LISTS])
def test_bad_requests_get_the_right_status_and_good_ones_are_unchanged(server, graphs, baseline, model):
    failures = []
    for case in [c for c in CASES if c.model == model]:
        reply: Reply = post(server, f"/v2/models/{model}/infer", case.body, case.headers)
        want = _expected_status(case)
        observed = f"{reply.status or reply.error}: {reply.message[:140]}" if reply.status != 200 else "200"
        ok = reply.status in want
        if case.expect == "parse":
            ok = ok and (reply.status == 400 or "parse" in reply.message)
        want = "/".join(map(str, want)) + (" (Triton's JSON parser)" if case.expect == "parse" else "")
        if ok and case.expect == "200" and case.table is not None and case.headers == {}:
            got = _json_outputs(reply)
            expected = graphs[GRAPH_OF[model]].transform(case.table)
            ok = all(np.array_equal(np.asarray(got[c]).ravel(), _flat(expected[c])) for c in got if c in expected.column_names)
            observed += ", equal to in-process" if ok else ", DIFFERS from in-process"
        if ok and case.expect == "400" and case.mentions:
            ok = case.mentions in reply.message
            observed += "" if ok else f" (does not mention {case.mentions!r})"
        if reply.status:
            json.loads(reply.body)  # every answer is valid JSON
        record(f"battery ({model})", case.name, want + (f", names {case.mentions!r}" if case.mentions else ""), observed)
        if not ok:
            failures.append(f"{case.name}: expected {want}, got {observed}")
    table, answer = baseline[model]
    assert server.infer(table, model=model) == answer, "a good request changed after the battery"
    stats = server.client("http").get_inference_statistics(model)["model_stats"][0]["inference_stats"]
    record(f"battery ({model})", "Triton's statistics after the battery", "documented",
           f"success {stats['success']['count']}, fail {stats['fail']['count']} (see 'Statistics' above)")
    assert server.healthy
    assert not failures, "\n".join(failures)


def _json_outputs(reply: Reply) -> dict:
    return {o["name"]: o["data"] for o in reply.json["outputs"]}


def _flat(col) -> np.ndarray:
    values = getattr(col, "values", col)
    return np.asarray(values).ravel()


def test_grpc_statuses(server, baseline):
    """The same mistakes over gRPC: INVALID_ARGUMENT, and the server keeps serving."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    table = multistage_request(2, seed=5)
    from funnel_triton.client import table_to_inputs

    def send(inputs, model=MULTISTAGE):
        try:
            client.infer(model, inputs)
        except InferenceServerException as exc:
            return exc.status(), exc.message()
        return "OK", ""

    try:
        cases = {}
        good = table_to_inputs(table, "grpc")
        cases["input missing"] = send(good[1:])
        big = multistage_request(4097, seed=1)
        cases["4,097 rows"] = send(table_to_inputs(big, "grpc"))
        lie = table_to_inputs(table, "grpc")
        off = next(i for i in lie if i.name().endswith("__offsets"))
        off.set_data_from_numpy(np.array([[0, 99, 1]], dtype=np.int64))
        cases["offsets past the values"] = send(lie)
        cases["4,097 rows, ensemble mode"] = send(table_to_inputs(big, "grpc"), MULTISTAGE_ENS)
        for name, (status, message) in cases.items():
            record("battery (gRPC)", name, "StatusCode.INVALID_ARGUMENT", f"{status}: {message[:120]}")
        assert all(status == "StatusCode.INVALID_ARGUMENT" for status, _ in cases.values()), cases
        assert send(good) == ("OK", "")
    finally:
        client.close()


def test_concurrent_good_and_bad(server, baseline):
    """Good and bad requests interleaved from 6 threads: every good one equals its answer
    alone, every bad one is a 400."""
    bad = [c for c in CASES if c.model == MULTISTAGE and c.expect == "400"][:60]
    goods = [multistage_request(1 + i % 4, seed=200 + i) for i in range(30)]
    alone = [server.infer(t, model=MULTISTAGE) for t in goods]
    local = threading.local()

    def run(job):
        kind, item = job
        if kind == "bad":
            return post(server, f"/v2/models/{MULTISTAGE}/infer", item.body, item.headers).status
        if not hasattr(local, "c"):
            from funnel_triton.client import make_client

            local.c = make_client(server.http_url, "http")
        from funnel_triton.client import infer

        return infer(local.c, goods[item], model=MULTISTAGE)

    jobs = [("bad", c) for c in bad] + [("good", i) for i in range(len(goods))]
    order = np.random.default_rng(0).permutation(len(jobs))
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(run, [jobs[i] for i in order]))
    by_job = {int(i): r for i, r in zip(order, results)}
    statuses = [by_job[i] for i in range(len(bad))]
    answers = [by_job[len(bad) + i] for i in range(len(goods))]
    record("battery (concurrent)", f"{len(bad)} bad + {len(goods)} good requests from 6 threads",
           "bad: 400; good: equal to alone", f"bad statuses {sorted(set(statuses))}; good equal: {answers == alone}")
    assert set(statuses) == {400}
    assert answers == alone
