"""Asking a PromQL server for less at a time when it refuses a query as too large.

Prometheus refuses a query that would load more than ``--query.max-samples`` samples,
VictoriaMetrics one that reads more than ``-search.maxSamplesPerQuery`` samples or
``-search.maxUniqueTimeseries`` series (``storage.promql_client.QueryTooLargeError``). Both
refusals are answered here the same two ways, each a bounded number of levels deep:

- :func:`by_parts`: the fleet split by the last characters of the node label (:func:`node_parts`:
  every series in exactly one part), each part asked on its own and the answers concatenated;
  for instant queries (``storage.promql_reduce``) and range queries (``storage.metrics``);
- :func:`by_spans`: a range query's time range split in two on its step grid, each half asked
  on its own and each series' samples joined (:func:`join_matrices`): the same points as one
  query. A refusal for too many *series* is not split by time (it would not help).

``storage.metrics`` asks a refused range query by parts of the fleet first (that answers a
limit on series too, and VictoriaMetrics counts the samples of whole storage blocks, so a
shorter range often reads as many), then a part still refused at the deepest level by halves
of its time range (Prometheus counts the samples a query holds: half the range, half the
samples). Each query is sent once: a long history (a model fit) is read in as few queries as
the server's limits allow.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import numpy as np

from storage.promql_client import QueryTooLargeError
from storage.promql_frames import flat_samples
from storage.promql_selector import Matcher, with_matchers

__all__ = [
    "MAX_SPLIT_DEPTH",
    "MAX_TIME_SPLIT_DEPTH",
    "by_parts",
    "by_spans",
    "join_matrices",
    "node_matcher",
    "node_parts",
]

logger = logging.getLogger(__name__)

Select = Callable[[str], str]
T = TypeVar("T")
Matrix = list[dict[str, Any]]

#: How many times a refused query is split by the node label's trailing characters (12 parts
#: each: the ten digits, anything else, and the names that end there), before the refusal is
#: reported.
MAX_SPLIT_DEPTH = 3
_CLASSES: tuple[str, ...] = (*"0123456789", "[^0-9]")


def node_parts(label: str, suffix: str = "", tail: str = "") -> list[Matcher]:
    """Split the series whose ``label`` ends in ``suffix`` by one more character before it.

    Eleven parts (each digit, anything else) plus the values that are exactly ``suffix`` (at the
    first level: series without the label), so every series is in exactly one part. ``tail``: a
    regex after the node name in the label's values (``(:[0-9]+)?`` for an ``instance`` with a
    port).
    """
    head = "[^:]*" if tail else ".*"  # with a port after it, the name cannot run into it
    parts = [(label, "=~", f'"{head}{c}{suffix}{tail}"') for c in _CLASSES]
    parts.append((label, "=~", f'"{suffix}{tail}"'))  # exactly the suffix (or no such label)
    return parts


def by_parts(
    matchers: Sequence[Matcher],
    build: Callable[[Select], str],
    send: Callable[[str], list[T]],
    *,
    what: str,
    label: str,
    tail: str = "",
    extra: Sequence[Matcher] = (),
    suffix: str = "",
    depth: int = 0,
    then: Callable[[str], list[T]] | None = None,
) -> list[T]:
    """Send ``build(select)``; when the server finds it too large, send each node part on its own.

    ``select`` adds ``matchers`` (the series selector's) and the part's matcher of ``label`` to
    a plain selector; the parts' answers are concatenated (:func:`node_parts`, with ``tail``).
    ``then``: how to ask a part still refused :data:`MAX_SPLIT_DEPTH` levels deep (a range
    query: by halves of its time range, :func:`by_spans`); None: the refusal is raised.
    """

    def select(promql: str) -> str:
        return with_matchers(promql, (*matchers, *extra))[0]

    query = build(select)
    try:
        return send(query)
    except QueryTooLargeError as exc:
        if depth >= MAX_SPLIT_DEPTH:
            if then is None or exc.series_limit:
                raise
            return then(query)
        logger.info("%s too large for the server: asking it by parts of %s", what, label)
    out: list[T] = []
    for matcher in node_parts(label, suffix, tail):
        deeper = matcher[2].strip('"').removeprefix("[^:]*" if tail else ".*").removesuffix(tail)
        out += by_parts(
            matchers,
            build,
            send,
            what=what,
            label=label,
            tail=tail,
            extra=(*extra, matcher),
            suffix=deeper,
            depth=depth + 1,
            then=then,
        )
    return out


def node_matcher(label: str, nodes: Iterable[str], tail: str = "") -> Matcher:
    """A matcher of ``label`` to exactly these node names (followed by ``tail``, a regex)."""
    alternatives = "|".join(re.escape(n) for n in sorted(nodes)) or "$^"
    escaped = alternatives.replace("\\", "\\\\").replace('"', '\\"')
    return (label, "=~", f'"({escaped}){tail}"' if tail else f'"{escaped}"')


#: How many times a refused range query's time range is halved (16 pieces at most) before the
#: refusal is reported.
MAX_TIME_SPLIT_DEPTH = 4


def by_spans(
    ask: Callable[[datetime, datetime], Matrix],
    start: datetime,
    end: datetime,
    step: timedelta,
    *,
    what: str,
    depth: int = 0,
    refused: bool = False,
) -> Matrix:
    """Ask ``ask(start, end)``; when the server finds it too large, ask each half on its own.

    The halves split the step grid ``start, start + step, ... <= end`` between them (no point
    twice, none lost), so the joined answer holds the points of the one query. A refusal for
    too many series, of a single point, or :data:`MAX_TIME_SPLIT_DEPTH` levels deep is raised.
    ``refused``: the whole range was already refused (for samples): start with the halves.
    """
    points = int((end - start) / step) + 1
    if not refused or points < 2:
        try:
            return ask(start, end)
        except QueryTooLargeError as exc:
            if exc.series_limit or points < 2 or depth >= MAX_TIME_SPLIT_DEPTH:
                raise
    logger.info("%s too large for the server: asking it by halves of %s", what, end - start)
    mid = start + step * ((points - 1) // 2)
    first = by_spans(ask, start, mid, step, what=what, depth=depth + 1)
    second = by_spans(ask, mid + step, end, step, what=what, depth=depth + 1)
    return join_matrices(first, second)


def join_matrices(*matrices: Matrix) -> Matrix:
    """Join range answers of consecutive time ranges: one series per label set, samples in order."""
    out: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for matrix in matrices:
        for series in matrix:
            key = tuple(sorted(series["metric"].items()))
            have = out.get(key)
            if have is None:
                out[key] = {"metric": series["metric"], "values": [series["values"]]}
            else:
                have["values"].append(series["values"])
    for series in out.values():  # one (n, 2) array, whichever way each half was decoded
        series["values"] = np.concatenate([_as_array(part) for part in series["values"]])
    return list(out.values())


def _as_array(values: Any) -> np.ndarray:
    """A checked series' samples as an ``(n, 2)`` float64 array (``storage.promql_decode``'s
    form): as they are, or from a JSON parser's ``[t, "value"]`` pairs."""
    if type(values) is np.ndarray:
        return values
    ts, numbers, _ = flat_samples([{"values": values}])
    return np.column_stack((ts, numbers))
