"""Prometheus answers checked sample by sample: frames, or one MetricsSourceError line, nothing else."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.metrics import DEFAULT_LABEL_MAP, PrometheusSource
from storage.promql_frames import (
    COMPONENT_LABEL,
    component_frame,
    gpu_frame,
    node_frame,
    parse_matrix,
    up_frame,
)
from storage.source import MetricsSourceError
from tests.fixtures import fleetdata as fd
from tests.fixtures.canned_http import canned_server

FUZZ = settings(
    deadline=None,
    derandomize=True,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)
NOW = 1_795_140_000
WINDOW = (fd.SCAN_AT - timedelta(minutes=10), fd.SCAN_AT)
STEP = timedelta(minutes=1)


def _answer(result: Any, result_type: Any = "matrix") -> dict[str, Any]:
    """A query_range answer around ``result``."""
    return {"status": "success", "data": {"resultType": result_type, "result": result}}


def _series(values: Any, **labels: Any) -> dict[str, Any]:
    """One series of a GPU (Hostname n1, gpu 0 unless given)."""
    return {
        "metric": {"Hostname": "n1", "gpu": "0", "instance": "n1:9400", **labels},
        "values": values,
    }


def _frames_of(matrix: list[dict[str, Any]]) -> None:
    """Every frame builder accepts what parse_matrix accepted."""
    gpu_frame("DCGM_FI_DEV_GPU_TEMP", matrix, DEFAULT_LABEL_MAP)
    node_frame("node_hwmon_temp_celsius", matrix, DEFAULT_LABEL_MAP)
    component_frame("output_watts", matrix)
    up_frame(matrix, DEFAULT_LABEL_MAP)


def _error_line(answer: Any) -> str:
    """parse_matrix's error for ``answer``, asserted one short line."""
    with pytest.raises(MetricsSourceError) as err:
        parse_matrix(answer, "Prometheus at http://p answered 'up'")
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 500, msg
    return msg


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (_answer([_series([["1795140000", "1"]])]), "non-numeric timestamp '1795140000'"),
        (_answer([_series([[None, "1"]])]), "non-numeric timestamp None"),
        (_answer([_series([[True, "1"]])]), "non-numeric timestamp True"),
        (_answer([_series([[1e300, "1"]])]), "out of range"),
        (_answer([_series([[-5, "1"]])]), "out of range"),
        (_answer([_series([[NOW, None]])]), "value None, not a string"),
        (_answer([_series([[NOW, 41.5]])]), "value 41.5, not a string"),
        (_answer([_series([[NOW, "41"], [NOW + 60, "hot"]])]), "sample 1 has the value 'hot'"),
        (_answer([_series([[NOW]])]), "not [time, value]"),
        (_answer([_series([NOW, "1"])]), "not [time, value]"),
        (_answer([_series(None)]), "no 'values' list"),
        (_answer([{"metric": {}, "value": [NOW, "1"]}]), "instant vector"),
        (_answer([{"values": []}]), "no 'metric' labels"),
        (_answer([_series([], gpu=0)]), "label 'gpu' is 0, not a string"),
        (_answer(["x"]), "series 0 is a str"),
        (_answer({"a": 1}), "not a list of series"),
        (_answer([], "vector"), "resultType 'vector' instead of 'matrix'"),
        (_answer([NOW, "1"], "scalar"), "resultType 'scalar'"),
        ({"status": "error", "error": "x" * 5000}, "status 'error': 'xxx"),
        ({"status": "success"}, "no 'data' object"),
        ([1, 2], "a JSON list"),
        (None, "a JSON NoneType"),
    ],
)
def test_bad_answers_are_one_line_naming_the_place(answer: Any, expected: str) -> None:
    """Non-numeric timestamps, null values, missing labels/values, wrong resultType: one line."""
    msg = _error_line(answer)
    assert expected in msg and "Prometheus at http://p answered 'up'" in msg


def test_nan_and_inf_are_prometheus_values() -> None:
    """ "NaN", "+Inf", "-Inf" and exponents are valid samples (NaN rows are dropped later)."""
    matrix = parse_matrix(
        _answer(
            [_series([[NOW, "NaN"], [NOW + 60, "+Inf"], [NOW + 120, "-Inf"], [NOW + 180.5, "1e3"]])]
        )
    )
    df, bad = gpu_frame("DCGM_FI_DEV_GPU_TEMP", matrix, DEFAULT_LABEL_MAP)
    assert bad == 0 and df is not None
    values = df["value"].tolist()
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 1000.0]


def test_missing_result_type_is_read_as_a_matrix() -> None:
    """Some PromQL proxies leave resultType out: a list of series is still read."""
    answer = {"status": "success", "data": {"result": [_series([[NOW, "1"]])]}}
    assert parse_matrix(answer)[0]["values"] == [[NOW, "1"]]


# ------------------------------------------------------------------ generated answers

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
TIMESTAMP = (
    st.integers(NOW - 10**6, NOW + 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers()
    | st.text(max_size=12)
    | st.none()
    | st.booleans()
)
VALUE = (
    st.sampled_from(["NaN", "+Inf", "-Inf", "0", "41.5", "1e3", "-0", " 7 ", "1_0", "0x1", ""])
    | st.from_regex(r"\A-?[0-9]{1,6}(\.[0-9]{1,3})?\Z")
    | st.text(max_size=8)
    | st.floats()
    | st.integers()
    | st.none()
)
SAMPLE = st.tuples(TIMESTAMP, VALUE).map(list) | JSON
LABELS = st.dictionaries(
    st.sampled_from(
        ["Hostname", "gpu", "instance", "name", "chip", "sensor", "job", COMPONENT_LABEL]
    )
    | st.text(max_size=6),
    st.text(max_size=12) | JSON,
    max_size=5,
)
SERIES = st.fixed_dictionaries(
    {},
    optional={
        "metric": LABELS | JSON,
        "values": st.lists(SAMPLE, max_size=6) | JSON,
        "value": JSON,
    },
)
ANSWER = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["success", "error"]) | JSON,
        "error": JSON,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "resultType": st.sampled_from(["matrix", "vector", "scalar", "string"]) | JSON,
                "result": st.lists(SERIES, max_size=4) | JSON,
            },
        )
        | JSON,
    },
)
WELL_FORMED = st.builds(
    _answer,
    st.lists(
        st.builds(
            _series,
            st.lists(
                st.tuples(st.integers(0, 7_000_000_000) | st.floats(0, 7e9), VALUE).map(list),
                max_size=8,
            ),
        ),
        max_size=4,
    ),
)


@FUZZ
@given(answer=ANSWER | JSON | WELL_FORMED)
def test_random_answers_parse_or_fail_in_one_line(answer: Any) -> None:
    """Any JSON shape: a matrix every frame builder accepts, or one MetricsSourceError line."""
    try:
        matrix = parse_matrix(answer, "Prometheus at http://p answered 'up'")
    except MetricsSourceError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 500
        return
    _frames_of(matrix)


# ------------------------------------------------------------------ through HTTP


@contextlib.contextmanager
def serve(body: bytes, status: int = 200) -> Iterator[str]:
    """Answer every request with ``body``; yield the base URL."""
    with canned_server(body, status) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (json.dumps(_answer([_series([["now", "1"]])])).encode(), "non-numeric timestamp 'now'"),
        (json.dumps(_answer([_series([[NOW, None]])])).encode(), "value None, not a string"),
        (
            json.dumps(_answer([{"metric": {"gpu": "0"}, "value": [NOW, "1"]}], "vector")).encode(),
            "instant vector",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
        (b"\xff\xfe\x00garbage", "invalid JSON"),
        (b'{"hello": "world"}', "not a Prometheus API response"),
    ],
    ids=["string-time", "null-value", "vector", "deep-json", "binary", "other-json"],
)
def test_fetch_turns_bad_answers_into_one_line(body: bytes, expected: str) -> None:
    """The same answers from a real HTTP server: fetch raises one line naming the server."""
    with serve(body) as url, pytest.raises(MetricsSourceError) as err:
        PrometheusSource(url, retries=0, timeout=5).fetch(*WINDOW, STEP)
    msg = str(err.value)
    assert "\n" not in msg and expected in msg and url in msg, msg


def test_fetch_reads_nan_strings() -> None:
    """A well-formed answer with "NaN" samples is read (the NaN rows are left out)."""
    body = json.dumps(_answer([_series([[NOW, "NaN"], [NOW + 60, "50"]])])).encode()
    with serve(body) as url:
        frames = PrometheusSource(url, retries=0, timeout=5).fetch(*WINDOW, STEP)
    assert frames.gpu["value"].tolist() and set(frames.gpu["value"]) == {50.0}


# ------------------------------------------------------------------ through the CLI


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("0001-01-01T00:00:00Z", "outside the years 2000-2200"),
        ("9999-12-31T23:59:59Z", "outside the years 2000-2200"),
        ("99999-01-01T00:00:00Z", "is not an RFC 3339 time"),
        ("x" * 500, "is not an RFC 3339 time"),
    ],
)
def test_scan_at_out_of_range_is_one_line(at: str, expected: str) -> None:
    """--at far outside any metrics: exit 2 with one line, before any query is sent."""
    from typer.testing import CliRunner

    from bot.cli import build_app

    env = {"GPU_RISK_PROMETHEUS_URL": "http://127.0.0.1:9"}
    result = CliRunner().invoke(build_app(), ["scan", "--at", at], env=env)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert expected in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "answer",
    [
        _answer([_series([["1795140000", "1"]])]),
        _answer([_series([[NOW, None]])]),
        _answer([{"metric": {"Hostname": "n1"}}]),
        _answer([{"metric": {"Hostname": "n1"}, "value": [NOW, "1"]}], "vector"),
    ],
    ids=["string-time", "null-value", "no-values", "vector"],
)
def test_scan_on_bad_answers_is_one_line(answer: dict[str, Any]) -> None:
    """gpu-risk scan against a server giving such answers: exit 2, one line, no traceback."""
    from typer.testing import CliRunner

    from bot.cli import build_app

    with serve(json.dumps(answer).encode()) as url:
        env = {"GPU_RISK_PROMETHEUS_URL": url, "GPU_RISK_PROMETHEUS_RETRIES": "0"}
        result = CliRunner().invoke(
            build_app(), ["scan", "--no-explain", "--at", "2026-11-22T10:00:00Z"], env=env
        )
    assert result.exit_code == 2, result.output
    assert "malformed answer" in result.stderr and "Traceback" not in result.output


# What engines answer when a query reads more than their per-query limits allow (the messages
# as Mimir, Cortex, Prometheus/Thanos and VictoriaMetrics word them); True: a limit on series.
_REFUSALS = {
    "mimir-chunks": (
        "the query exceeded the maximum number of chunks (limit: 2 chunks) "
        "(err-mimir-max-chunks-per-query). Consider reducing the time range and/or number of "
        "series selected by the query.",
        False,
    ),
    "mimir-series": (
        "the query exceeded the maximum number of series (limit: 1 series) "
        "(err-mimir-max-series-per-query)",
        True,
    ),
    "mimir-memory": (
        "the query exceeded the maximum allowed estimated amount of memory consumed by a single "
        "query (limit: 1000 bytes) (err-mimir-max-estimated-memory-consumption-per-query)",
        False,
    ),
    "prometheus": (
        "query processing would load too many samples into memory in query execution",
        False,
    ),
    "victoriametrics-series": (
        "cannot fetch query results: the number of matching timeseries exceeds 1000; "
        "either narrow down the search or increase -search.maxUniqueTimeseries",
        True,
    ),
}


@pytest.mark.parametrize("engine", sorted(_REFUSALS))
def test_a_refusal_for_size_is_told_apart_so_the_query_is_split(engine: str) -> None:
    from storage.promql_client import PromQLClient, QueryTooLargeError

    message, series = _REFUSALS[engine]
    body = json.dumps({"status": "error", "errorType": "execution", "error": message}).encode()
    with serve(body, 422) as url:
        client = PromQLClient(url, retries=0, timeout=5)
        with pytest.raises(QueryTooLargeError) as err:
            client.query_range("DCGM_FI_DEV_GPU_TEMP", *WINDOW, STEP)
    assert err.value.series_limit is series
    assert "\n" not in str(err.value)


def test_other_422_answers_are_not_taken_for_size() -> None:
    from storage.promql_client import PromQLClient, QueryTooLargeError

    body = json.dumps({"status": "error", "error": "bad_data: parse error at char 3"}).encode()
    with serve(body, 422) as url, pytest.raises(MetricsSourceError) as err:
        PromQLClient(url, retries=0, timeout=5).query_range("x{", *WINDOW, STEP)
    assert not isinstance(err.value, QueryTooLargeError)


def test_clients_sharing_a_session_decode_each_answer_once() -> None:
    """Several clients on one ``requests`` session (a caller's, e.g. with its own proxies) add
    the orjson decoding hook once, and each answer still decodes."""
    import requests

    from storage.promql_client import PromQLClient, _decoded_by_orjson

    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})
    session = requests.Session()
    with serve(body.encode(), 200) as url:
        clients = [PromQLClient(url, retries=0, timeout=5, session=session) for _ in range(3)]
        assert session.hooks["response"].count(_decoded_by_orjson) == 1
        assert [c.query("up") for c in clients] == [[], [], []]
