"""Range-query answers decoded straight into numpy: no Python object per sample.

A range query's JSON holds every sample as ``[1795174200,"62"]``; decoded by a JSON parser that
is a list, a number and a string per sample, which the frame builders then turn back into
arrays (a 10,000-GPU cold scan spent 12 s in ``orjson.loads`` and 5 s more checking and
flattening what it made). :func:`decode_matrix` reads the answer as Prometheus and
VictoriaMetrics write it (compact JSON, ``{"metric":{...},"values":[[t,"v"],...]}`` per
series): each series' labels are decoded by orjson, and all of its samples parsed by numpy at
once, into one ``(n, 2)`` float64 array per series (a view of one array for the whole answer)
where a JSON parser would give a list of pairs. ``storage.promql_frames`` reads both forms.

It decodes only what it recognises whole: the answer's envelope is decoded by orjson with the
series cut out, the series must follow one another exactly, every label value must be a string,
every timestamp a plain number in range and every value a string numpy parses ("NaN", "+Inf"
and "-Inf" included). Anything else (another layout, a label value holding a brace, a malformed
sample) returns None, and the caller decodes the answer the ordinary way, which reports what
is wrong in it.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson

from storage.promql_frames import MAX_TIMESTAMP

__all__ = ["decode_matrix"]

_PREFIX = re.compile(rb'\{"status":"success","data":\{"resultType":"matrix","result":\[')
# one sample: a JSON number (no sign, no NaN) and a value string as Prometheus writes one (a
# decimal number, NaN, +Inf or -Inf); numpy would read some other strings its own way ("" as -1)
_PAIR = rb'\[[0-9][0-9.eE+-]*,"(?:-?[0-9][0-9.eE+-]*|NaN|[+-]Inf)"\]'
_SERIES = re.compile(
    rb'\{"metric":(\{[^{}]*\}),"values":\[(' + _PAIR + rb"(?:," + _PAIR + rb")*)\]\}"
)
_BLANK = bytes.maketrans(b'[]"', b"   ")


def decode_matrix(body: bytes) -> Any | None:
    """The decoded answer of a range query, each series' ``values`` a ``(n, 2)`` float64 array
    of (unix seconds, value); None when ``body`` is not a matrix answer laid out as expected."""
    head = _PREFIX.match(body)
    if head is None:
        return None
    labels: list[bytes] = []
    chunks: list[bytes] = []
    pos = head.end()
    while True:
        found = _SERIES.match(body, pos)
        if found is None:
            break
        labels.append(found.group(1))
        chunks.append(found.group(2))
        pos = found.end()
        if body[pos : pos + 1] != b",":
            break
        pos += 1
    if body[pos : pos + 1] != b"]":
        return None  # a series laid out otherwise: decode the ordinary way
    try:
        answer = orjson.loads(body[: head.end()] + body[pos:])  # the envelope, series cut out
        metrics = orjson.loads(b"[" + b",".join(labels) + b"]")
        numbers = np.fromstring(b",".join(chunks).translate(_BLANK), sep=",")
    except (orjson.JSONDecodeError, ValueError):
        return None
    lengths = np.fromiter((c.count(b"],[") + 1 for c in chunks), np.int64, count=len(chunks))
    total = int(lengths.sum())
    if numbers.size != 2 * total or not _strings_only(metrics):
        return None
    pairs = numbers.reshape(total, 2)
    ts = pairs[:, 0]
    if not bool(((ts >= 0) & (ts < MAX_TIMESTAMP)).all()):
        return None
    ends = np.cumsum(lengths)
    answer["data"]["result"] = [
        {"metric": metric, "values": pairs[end - n : end]}
        for metric, n, end in zip(metrics, lengths.tolist(), ends.tolist(), strict=True)
    ]
    return answer


def _strings_only(metrics: list[Any]) -> bool:
    """Whether every series' labels are an object of string values."""
    return all(type(m) is dict for m in metrics) and all(
        type(v) is str for m in metrics for v in m.values()
    )
