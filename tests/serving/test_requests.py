"""Malformed and edge-case prediction requests over HTTP: each gets a 4xx Seldon status."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlship.model_loader import load_model
from tests.serving.conftest import MAX_BATCH_ROWS, MAX_BODY_BYTES, Registry
from tests.serving.support import CLASSES, FEATURE_NAMES, GOOD_ROW, PREDICT_PATH, ModelServer, ndarray

JSON = "application/json"


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes | str
    status: int
    info: str  # a part of the status object's "info" that names the problem
    content_type: str | None = JSON
    method: str = "POST"
    path: str = PREDICT_PATH
    headers: dict[str, str] = field(default_factory=dict)


def dump(payload: Any) -> str:
    return json.dumps(payload)


def tensor(shape: Any, values: Any = None, **extra: Any) -> str:
    body: dict[str, Any] = {"shape": shape, **extra}
    if values is not None:
        body["values"] = values
    return dump({"data": {"tensor": body}})


ROW_OF_FOUR = "[5.1, 3.5, 1.4, 0.2]"
CASES = [
    # transport: body, content type, method, path
    Case("empty body", b"", 400, "not valid JSON: the body is empty"),
    Case("truncated json", '{"data": {"ndarray": [[5.1, 3.5', 400, "not valid JSON"),
    Case("not json", "hello", 400, "not valid JSON"),
    Case("trailing garbage", dump(ndarray([GOOD_ROW])) + "}", 400, "not valid JSON"),
    Case("invalid utf-8", b'{"data": "\xff\xfe"}', 400, "not valid JSON"),
    Case("single quotes", "{'data': {}}", 400, "not valid JSON"),
    # Deeper than both orjson's limit of 1,024 levels and Python's recursion limit.
    Case("nested too deeply", "[" * 5_000 + "]" * 5_000, 400, "nested too deeply"),
    Case("deep value in row", '{"data": {"ndarray": [[' + "[" * 2_000 + "]" * 2_000 + ", 3.5]]}}", 400, "too deeply"),
    Case("no content type", dump(ndarray([GOOD_ROW])), 415, "Content-Type must be application/json", None),
    Case("text plain", dump(ndarray([GOOD_ROW])), 415, "got 'text/plain'", "text/plain"),
    Case("form encoded", "json=" + dump(ndarray([GOOD_ROW])), 415, "Content-Type", "application/x-www-form-urlencoded"),
    Case("multipart", b"--x\r\n\r\n--x--\r\n", 415, "Content-Type", "multipart/form-data; boundary=x"),
    Case("body over limit", dump(ndarray([GOOD_ROW] * 1000)), 413, f"limit of {MAX_BODY_BYTES}"),
    Case("get predictions", b"", 405, "POST", method="GET"),
    Case("get legacy predict", b"", 405, "POST", method="GET", path="/predict"),
    Case("get unknown path", b"", 404, "not found", method="GET", path="/api/v1.0/nothing"),
    # seldon-core's static file route matches any path for GET only, hence 405 here.
    Case("post unknown path", dump(ndarray([GOOD_ROW])), 405, "not allowed", path="/api/v1.0/nothing"),
    # payload structure
    Case("json null", "null", 400, "must be a JSON object, got null"),
    Case("json list", dump([GOOD_ROW]), 400, "must be a JSON object, got list"),
    Case("json number", "42", 400, "must be a JSON object, got int"),
    Case("json string", '"text"', 400, "must be a JSON object, got string"),
    Case("empty object", "{}", 400, "must contain a 'data' object"),
    Case("unknown top key", dump({**ndarray([GOOD_ROW]), "extra": 1}), 400, "unknown key(s) in request: 'extra'"),
    Case("jsonData payload", dump({"jsonData": {"a": 1}}), 400, "unknown key(s) in request: 'jsonData'"),
    Case("strData payload", dump({"strData": "5.1,3.5"}), 400, "unknown key(s) in request: 'strData'"),
    Case("meta not object", dump({**ndarray([GOOD_ROW]), "meta": []}), 400, "'meta' must be a JSON object"),
    Case("data not object", dump({"data": [GOOD_ROW]}), 400, "'data' must be a JSON object, got list"),
    Case("unknown data key", dump({"data": {"ndarray": [GOOD_ROW], "rows": 1}}), 400, "unknown key(s) in data: 'rows'"),
    Case("no ndarray or tensor", dump({"data": {"names": FEATURE_NAMES}}), 400, "exactly one of 'ndarray' or 'tensor'"),
    Case(
        "ndarray and tensor",
        dump({"data": {"ndarray": [GOOD_ROW], "tensor": {"shape": [1, 4], "values": GOOD_ROW}}}),
        400,
        "exactly one of",
    ),
    Case("ndarray not list", dump({"data": {"ndarray": "rows"}}), 400, "'ndarray' must be a list of rows"),
    Case("flat row", dump(ndarray(GOOD_ROW)), 400, "row 0 is float: wrap a single row"),
    Case("empty ndarray", dump(ndarray([])), 400, "the batch is empty"),
    Case("empty row", dump(ndarray([[]])), 400, "rows are empty"),
    Case("ragged rows", dump(ndarray([GOOD_ROW, GOOD_ROW[:3]])), 400, "rows have different lengths [3, 4]"),
    Case("nested row", dump(ndarray([[[5.1], [3.5], [1.4], [0.2]]])), 400, "found list"),
    Case(
        "batch over limit",
        dump(ndarray([GOOD_ROW] * (MAX_BATCH_ROWS + 1))),
        400,
        f"more than the limit of {MAX_BATCH_ROWS}",
    ),
    # values
    Case("string value", dump(ndarray([[5.1, 3.5, 1.4, "0.2"]])), 400, "must be numbers; found string"),
    Case("boolean value", dump(ndarray([[5.1, 3.5, 1.4, True]])), 400, "found boolean"),
    Case("null value", dump(ndarray([[5.1, 3.5, 1.4, None]])), 400, "found null"),
    Case("object value", dump(ndarray([[5.1, 3.5, 1.4, {"v": 1}]])), 400, "found object"),
    Case("nan literal", '{"data": {"ndarray": [[5.1, 3.5, 1.4, NaN]]}}', 400, "found NaN or infinity"),
    Case("infinity literal", '{"data": {"ndarray": [[Infinity, 3.5, 1.4, 0.2]]}}', 400, "NaN or infinity"),
    Case("minus infinity", '{"data": {"ndarray": [[-Infinity, 3.5, 1.4, 0.2]]}}', 400, "NaN or infinity"),
    Case("overflowing float", '{"data": {"ndarray": [[1e999, 3.5, 1.4, 0.2]]}}', 400, "NaN or infinity"),
    Case(
        "huge integer",
        '{"data": {"ndarray": [[' + "9" * 400 + ", 3.5, 1.4, 0.2]]}}",
        400,
        "too large for a 64-bit float",
    ),
    Case("too few features", dump(ndarray([GOOD_ROW[:3]])), 400, "must have 4 features"),
    Case("too many features", dump(ndarray([[*GOOD_ROW, 1.0]])), 400, "got 5"),
    # names
    Case("names not list", dump(ndarray([GOOD_ROW], names="a,b,c,d")), 400, "'names' must be a list"),  # type: ignore[arg-type]
    Case("names not strings", dump(ndarray([GOOD_ROW], names=[1, 2, 3, 4])), 400, "'names' must be a list"),  # type: ignore[list-item]
    Case("names too short", dump(ndarray([GOOD_ROW], names=FEATURE_NAMES[:3])), 400, "lists 3 names"),
    Case(
        "names unknown",
        dump(ndarray([GOOD_ROW], names=[*FEATURE_NAMES[:3], "petal_area"])),
        400,
        "unknown feature name(s) 'petal_area'; missing 'petal_width_cm'",
    ),
    Case(
        "names repeated",
        dump(ndarray([GOOD_ROW], names=[*FEATURE_NAMES[:3], FEATURE_NAMES[0]])),
        400,
        "repeats 'sepal_length_cm'",
    ),
    # tensor
    Case("tensor not object", dump({"data": {"tensor": [1]}}), 400, "'tensor' must be a JSON object"),
    Case("tensor wrong shape", tensor([2, 4], GOOD_ROW), 400, "has 4 values but shape [2, 4] needs 8"),
    Case("tensor 1-d shape", tensor([4], GOOD_ROW), 400, "'tensor.shape' must be [rows, columns]"),
    Case("tensor 3-d shape", tensor([1, 2, 2], GOOD_ROW), 400, "[rows, columns]"),
    Case("tensor negative shape", tensor([-1, 4], GOOD_ROW), 400, "non-negative"),
    Case("tensor float shape", tensor([1.0, 4], GOOD_ROW), 400, "two non-negative integers"),
    Case("tensor no values", tensor([1, 4]), 400, "'tensor.values' must be a flat list"),
    Case("tensor nested values", tensor([1, 4], [GOOD_ROW]), 400, "has 1 values"),
    Case("tensor zero rows", tensor([0, 4], []), 400, "the batch is empty"),
    Case("tensor wrong columns", tensor([2, 2], GOOD_ROW), 400, "must have 4 features"),
    Case("tensor string value", tensor([1, 4], [5.1, 3.5, 1.4, "x"]), 400, "found string"),
    Case("tensor unknown key", tensor([1, 4], GOOD_ROW, dtype="f"), 400, "unknown key(s) in tensor: 'dtype'"),
]


def send(server: ModelServer, case: Case) -> requests.Response:
    headers = dict(case.headers)
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    body = case.body.encode() if isinstance(case.body, str) else case.body
    return requests.request(case.method, server.url + case.path, data=body, headers=headers, timeout=30)


def assert_good_prediction(server: ModelServer) -> None:
    response = server.predict(ndarray([GOOD_ROW]))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["names"] == CLASSES


def assert_status_object(response: requests.Response, status: int, info: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == JSON
    body = response.json()
    assert set(body) == {"status"}
    assert body["status"]["code"] == status
    assert body["status"]["status"] == "FAILURE"
    assert body["status"]["reason"]
    assert info in body["status"]["info"]
    assert "Traceback" not in response.text


def test_table_has_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_request_is_rejected(local_server: ModelServer, case: Case) -> None:
    response = send(local_server, case)
    assert_status_object(response, case.status, case.info)
    assert_good_prediction(local_server)


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("names reordered", ndarray([GOOD_ROW[::-1]], names=FEATURE_NAMES[::-1])),
        ("integers", ndarray([[5, 3, 1, 0]])),
        ("tensor", {"data": {"tensor": {"shape": [2, 4], "values": GOOD_ROW * 2}}}),
        ("meta passed", {**ndarray([GOOD_ROW]), "meta": {"puid": "abc"}}),
        ("batch at limit", ndarray([GOOD_ROW] * MAX_BATCH_ROWS)),
        ("negative zero", ndarray([[-0.0, 3.5, 1.4, 0.2]])),
    ],
)
def test_edge_request_is_accepted(local_server: ModelServer, name: str, payload: Any) -> None:
    response = local_server.predict(payload)
    assert response.status_code == 200, response.text
    rows = response.json()["data"]["ndarray"]
    data = payload["data"]
    expected_rows = data["tensor"]["shape"][0] if "tensor" in data else len(data["ndarray"])
    assert len(rows) == expected_rows
    assert all(abs(sum(row) - 1.0) < 1e-9 for row in rows)


def test_reordered_names_give_same_prediction(local_server: ModelServer) -> None:
    plain = local_server.predict(ndarray([GOOD_ROW])).json()["data"]["ndarray"]
    reordered = local_server.predict(ndarray([GOOD_ROW[::-1]], names=FEATURE_NAMES[::-1])).json()["data"]["ndarray"]
    assert reordered == plain


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_batch_response_matches_model_exactly(local_server: ModelServer, registry: Registry) -> None:
    # Rows across the iris range, so that some probabilities are small enough to be
    # written with an exponent.
    rows = np.random.default_rng(7).uniform(0.1, 8.0, size=(MAX_BATCH_ROWS, 4)).round(1).tolist()
    response = local_server.predict(ndarray(rows))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == JSON
    body = response.json()
    assert list(body) == ["data", "meta"]
    assert body["data"]["names"] == CLASSES
    expected = load_model(str(registry.local_path)).predict_proba(np.array(rows))
    assert body["data"]["ndarray"] == expected.tolist()
    assert min(min(row) for row in body["data"]["ndarray"]) < 1e-4


# Values that JSON can carry in a feature slot; only finite numbers are valid.
json_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)
payloads = st.one_of(
    st.builds(ndarray, st.lists(st.lists(json_values, min_size=0, max_size=6), min_size=0, max_size=4)),
    st.builds(
        lambda rows, names: ndarray(rows, names),
        st.lists(st.lists(st.floats(-10, 10), min_size=4, max_size=4), min_size=1, max_size=3),
        st.lists(st.sampled_from([*FEATURE_NAMES, "other"]), min_size=0, max_size=5),
    ),
    st.dictionaries(
        st.sampled_from(["data", "meta", "extra", "jsonData"]), st.none() | st.integers() | st.text(max_size=3)
    ),
)


def is_valid(payload: dict[str, Any]) -> bool:
    data = payload.get("data")
    if set(payload) != {"data"} or not isinstance(data, dict) or "ndarray" not in data:
        return False
    rows = data["ndarray"]
    if not rows or not all(isinstance(row, list) and len(row) == 4 for row in rows):
        return False
    if not all(type(value) in (int, float) for row in rows for value in row):
        return False
    names = data.get("names")
    return names is None or sorted(names) == sorted(FEATURE_NAMES)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=payloads)
def test_generated_payloads_get_200_or_400(local_server: ModelServer, payload: dict[str, Any]) -> None:
    response = local_server.predict(payload)
    if is_valid(payload):
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]["ndarray"]) == len(payload["data"]["ndarray"])
    else:
        assert_status_object(response, 400, "")
