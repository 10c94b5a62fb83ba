"""Range answers decoded into numpy (storage.promql_decode) say what a JSON parser says.

Against generated answers (any label text, values Prometheus writes: NaN, +Inf, -Inf, float
timestamps), malformed ones (which must fall back to the ordinary decoder, so its error is the
one a user sees), and the answers of a real Prometheus and VictoriaMetrics.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import orjson
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.metrics import PrometheusSource
from storage.promql_decode import decode_matrix
from storage.promql_frames import flat_samples, gpu_frame, parse_matrix
from storage.promql_split import join_matrices
from storage.source import MetricsSourceError
from tests.fixtures.prometheus import PromqlBackend

pytest_plugins = ("tests.fixtures.prometheus",)

LABELS = {"node": "Hostname", "gpu": "gpu", "instance": "instance", "sensor": "sensor"}


def _text(value: float) -> str:
    """A sample value as Prometheus writes it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _body(series: list[tuple[dict[str, str], list[tuple[float, float]]]], tail: str = "") -> bytes:
    """A range answer laid out as Prometheus writes it (compact JSON, metric before values)."""
    result = [
        {"metric": labels, "values": [[t, _text(v)] for t, v in samples]}
        for labels, samples in series
    ]
    body = orjson.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
    return body[:-1] + tail.encode() + b"}" if tail else body


def _same(fast: dict[str, Any], plain: dict[str, Any]) -> None:
    """The two decodings of an answer are the same: series, samples and the rest of it."""
    _same_series(fast["data"]["result"], parse_matrix(plain))
    assert {k: v for k, v in fast.items() if k != "data"} == {
        k: v for k, v in plain.items() if k != "data"
    }


def _same_series(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """The same series, labels and samples, in the same order."""
    assert [s["metric"] for s in got] == [s["metric"] for s in want]
    for a, b in zip(got, want, strict=True):
        assert a["values"].shape == (len(b["values"]), 2)
    for x, y in zip(flat_samples(got), flat_samples(want), strict=True):
        np.testing.assert_array_equal(x, y)


# any text JSON can hold (no lone surrogates)
label_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
plain_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="{}"), max_size=12
)
value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**9), 10**9).map(float),
)
stamp = st.one_of(
    st.integers(0, 7_000_000_000),
    st.floats(0, 7_000_000_000, allow_nan=False).map(lambda t: round(t, 3)),
)


def _answers(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.lists(
        st.tuples(
            st.dictionaries(text, text, max_size=4),
            st.lists(st.tuples(stamp, value), min_size=1, max_size=6),
        ),
        max_size=5,
    )


@settings(max_examples=300, deadline=None)
@given(_answers(plain_text))
def test_answers_without_braces_in_labels_are_decoded_as_a_json_parser_does(series: Any) -> None:
    body = _body(series)
    fast = decode_matrix(body)
    assert fast is not None, body[:200]
    _same(fast, orjson.loads(body))


@settings(max_examples=300, deadline=None)
@given(_answers(label_text))
def test_any_label_text_is_decoded_right_or_left_to_the_json_parser(series: Any) -> None:
    body = _body(series)
    fast = decode_matrix(body)
    if fast is not None:
        _same(fast, orjson.loads(body))


def test_what_follows_the_series_is_kept_and_an_empty_answer_decodes() -> None:
    body = _body([({"a": "1"}, [(1.5, 2.0)])], tail=',"warnings":["partial"]')
    fast = decode_matrix(body)
    assert fast is not None and fast["warnings"] == ["partial"]
    empty = decode_matrix(_body([]))
    assert empty is not None and empty["data"]["result"] == []


@pytest.mark.parametrize(
    "sample",
    [
        b'[1795174200,"abc"]',  # a value that is not a number
        b'[1795174200,""]',  # an empty value (numpy alone would read -1)
        b'[1795174200,"1,5"]',  # two numbers in one value
        b'[1795174200,"nan(1)"]',  # a NaN payload (numpy alone would read NaN)
        b'[1795174200,"1e"]',  # half a number
        b"[1795174200,62]",  # a number where Prometheus writes a string
        b'["1795174200","62"]',  # a string timestamp
        b'[1795174200,"6\\u0032"]',  # an escape in the value
        b'[9795174200,"62"]',  # a timestamp past 2200
        b'[1795174200,"62",3]',  # three elements
    ],
)
def test_a_malformed_sample_is_left_to_the_ordinary_decoder(sample: bytes) -> None:
    """Which then says what is wrong (an escaped value is no error: it reads as JSON says)."""
    body = (
        b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},'
        b'"values":[[1795174140,"61"],' + sample + b"]}]}}"
    )
    assert decode_matrix(body) is None
    if b"\\" in sample:
        assert flat_samples(parse_matrix(orjson.loads(body)))[1].tolist() == [61.0, 62.0]
    else:
        with pytest.raises(MetricsSourceError, match="malformed answer"):
            parse_matrix(orjson.loads(body))


@pytest.mark.parametrize(
    "body",
    [
        b'{"status":"error","errorType":"bad_data","error":"x"}',
        b'{"status":"success","data":{"resultType":"vector","result":[]}}',
        b'{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1,"2"]],'
        b'"metric":{}}]}}',  # another key order
        b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},'
        b'"values":[[1,"2"]]}',  # truncated
        b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":1},'
        b'"values":[[1,"2"]]}]}}',  # a label value that is not a string
    ],
)
def test_other_answers_are_left_to_the_ordinary_decoder(body: bytes) -> None:
    assert decode_matrix(body) is None


def test_halves_of_a_range_join_whichever_way_they_were_decoded() -> None:
    first = _body([({"a": "1"}, [(60.0, 1.0), (120.0, math.nan)])])
    second = _body([({"a": "1"}, [(180.0, math.inf), (240.0, 2.5)])])
    fast = [decode_matrix(b)["data"]["result"] for b in (first, second)]  # type: ignore[index]
    plain = [parse_matrix(orjson.loads(b)) for b in (first, second)]
    for halves in (fast, plain, [fast[0], plain[1]], [plain[0], fast[1]]):
        ts, values, lengths = flat_samples(join_matrices(*halves))
        np.testing.assert_array_equal(ts, [60.0, 120.0, 180.0, 240.0])
        np.testing.assert_array_equal(values, [1.0, math.nan, math.inf, 2.5])
        assert lengths.tolist() == [4]


def test_a_real_server_s_answers_are_decoded_into_numpy(promql_backend: PromqlBackend) -> None:
    """Raw series and a subquery reduction, as a cycle reads them: the source's answer is the
    numpy one (not a fallback), equal to the JSON parser's reading of the same answer."""
    from tests.fixtures import fleetdata as fd

    src = PrometheusSource(promql_backend.url, retries=0)
    end = fd.SCAN_AT
    start = end - timedelta(minutes=30)
    queries = (
        "last_over_time(DCGM_FI_DEV_GPU_TEMP[59999ms])",
        "avg_over_time((last_over_time(DCGM_FI_DEV_POWER_USAGE[59999ms]))[599999ms:60000ms])",
    )
    for query in queries:
        got = src.query_range(query, start, end, timedelta(minutes=1))
        assert got and all(type(s["values"]) is np.ndarray for s in got), query
        answer = requests.get(
            f"{promql_backend.url}/api/v1/query_range",
            params={
                "query": query,
                "start": round(start.timestamp()),
                "end": round(end.timestamp()),
                "step": "60s",
            },
            timeout=30,
        ).json()
        plain = parse_matrix(answer)
        _same_series(got, plain)
        frame, bad = gpu_frame("x", got, LABELS)
        want, bad_want = gpu_frame("x", plain, LABELS)
        assert bad == bad_want and frame is not None and want is not None
        assert frame.equals(want)


def test_a_decoded_answer_s_body_goes_with_its_response_not_with_the_collector() -> None:
    """The decoding hook holds its response weakly: a 100,000-GPU fetch's answers (hundreds of MB
    of JSON) waited for the collector while a reference cycle held them (0.6 GB more peak
    memory with the forty-first session's collector thresholds)."""
    import gc
    import weakref

    from storage.promql_client import _decoded_by_orjson

    response = requests.Response()
    response.status_code = 200
    response._content = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
    hooked = _decoded_by_orjson(response)
    assert hooked.json() == {"status": "success", "data": {"resultType": "vector", "result": []}}
    gone = weakref.ref(response)
    enabled = gc.isenabled()
    gc.disable()
    try:
        del response, hooked
        assert gone() is None, "a reference cycle keeps the response (and its body) alive"
    finally:
        if enabled:
            gc.enable()
