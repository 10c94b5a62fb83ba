"""PromQL answers into tidy frames: range-query matrices become the frames of ``FleetFrames``.

``parse_matrix`` checks a decoded ``/api/v1/query_range`` answer, every sample (status,
``resultType`` matrix, each series' ``metric`` labels and ``values`` pairs of a numeric timestamp
and a value string) and raises one ``MetricsSourceError`` line naming the first bad place; the
frame builders below only ever see answers it accepted. Values follow Prometheus: "NaN", "+Inf"
and "-Inf" are valid samples.

Which label names what comes from a label map (keys node, gpu, instance, sensor); a node named by
``instance`` loses its port. Label values are interned: a running bot's window holds rows of
some forty reads (storage.rolling), and each read's own copies of the same names would stay
alive as long as its rows do (at 100,000 GPUs 50-140 MB more each cycle until they left).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from itertools import chain
from operator import itemgetter
from sys import intern
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.types import (
    COMPONENT_COLUMNS,
    GPU_COLUMNS,
    NODE_COLUMNS,
    UP_COLUMNS,
    FleetFrames,
    run_heads,
)
from storage.source import MetricsSourceError

logger = logging.getLogger(__name__)

# The label component queries are tagged with, so each series says which component it belongs to.
COMPONENT_LABEL = "gpu_risk_component"

# Sample timestamps must fall in [1970, 2200): the frames are pandas nanosecond timestamps.
MAX_TIMESTAMP = 7_258_118_400.0
_ECHO_CHARS = 60


def _echo(value: Any) -> str:
    """A bounded, one-line repr of a value from the answer, for an error message."""
    try:
        text = repr(value)[: _ECHO_CHARS * 4]
    except ValueError:  # an integer past Python's 4300-digit str limit
        text = f"<a {type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= _ECHO_CHARS else text[: _ECHO_CHARS - 3] + "..."


def _malformed(where: str, problem: str) -> MetricsSourceError:
    """The one-line error for an answer that is not a well-formed range-query matrix."""
    return MetricsSourceError(
        f"{where} with a malformed answer ({problem}): check that the URL is a Prometheus-"
        "compatible API and that no proxy in between rewrites or truncates answers"
    )


def parse_matrix(answer: Any, where: str = "Prometheus answered") -> list[dict[str, Any]]:
    """Validate a decoded query_range answer; return its series or raise MetricsSourceError.

    Each returned series is ``{"metric": {label: value}, "values": [[ts, "value"], ...]}`` with
    string labels, timestamps finite numbers in range and values parseable as float64.
    """
    if not isinstance(answer, dict):
        raise _malformed(where, f"a JSON {type(answer).__name__}, not an object")
    status = answer.get("status")
    if status != "success":
        error = answer.get("error")
        detail = f": {_echo(error)}" if isinstance(error, str) else ""
        raise _malformed(where, f"status {_echo(status)}{detail}")
    data = answer.get("data")
    if not isinstance(data, dict):
        raise _malformed(where, "no 'data' object")
    kind = data.get("resultType", "matrix")
    if kind != "matrix":
        raise _malformed(where, f"resultType {_echo(kind)} instead of 'matrix'")
    result = data.get("result")
    if not isinstance(result, list):
        raise _malformed(where, "'data.result' is not a list of series")
    if _decoded(result):  # checked as it was decoded (storage.promql_decode)
        return result
    if not _well_formed(result):  # the slow walk only to name the first bad place
        for i, series in enumerate(result):
            _check_series(series, f"series {i}", where)
    return result


def _decoded(result: list[Any]) -> bool:
    """Whether every series of ``result`` came from ``storage.promql_decode``: its samples an
    ``(n, 2)`` float64 array, checked there (labels strings, timestamps in range)."""
    return bool(result) and all(
        type(series) is dict
        and type(series.get("values")) is np.ndarray
        and type(series.get("metric")) is dict
        for series in result
    )


def _well_formed(result: list[Any]) -> bool:
    """Check every series and sample at once (type sets and numpy, no per-sample Python frames).

    True when the whole matrix is well formed; False when anything is off, so that the caller
    walks it series by series to say where.
    """
    try:
        if any(type(series) is not dict for series in result):
            return False
        labels = [series.get("metric") for series in result]
        values = [series.get("values") for series in result]
        if any(type(m) is not dict for m in labels) or any(type(v) is not list for v in values):
            return False
        if any(type(x) is not str for m in labels for x in m.values()):
            return False
        pairs = list(chain.from_iterable(values))
        if not pairs:
            return True
        if set(map(type, pairs)) != {list} or set(map(len, pairs)) != {2}:
            return False
        stamps, texts = list(map(itemgetter(0), pairs)), list(map(itemgetter(1), pairs))
        if not set(map(type, stamps)) <= {int, float} or set(map(type, texts)) != {str}:
            return False
        ts = np.asarray(stamps, dtype="float64")
        np.asarray(texts, dtype="float64")
    except (ValueError, TypeError, OverflowError):
        return False
    return bool(((ts >= 0) & (ts < MAX_TIMESTAMP)).all())


def flat_samples(matrix: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All samples of a checked matrix: (timestamps, values, samples per series), vectorised.

    A series' ``values`` are pairs of a number and a value string (a JSON parser's), or an
    ``(n, 2)`` float64 array (``storage.promql_decode``'s)."""
    lengths = np.fromiter((len(s["values"]) for s in matrix), dtype=np.int64, count=len(matrix))
    if all(type(s["values"]) is np.ndarray for s in matrix):
        if not matrix:
            return np.empty(0), np.empty(0), lengths
        pairs_of = np.concatenate([s["values"] for s in matrix])
        return pairs_of[:, 0].copy(), pairs_of[:, 1].copy(), lengths
    pairs = list(chain.from_iterable(s["values"] for s in matrix))
    ts = np.fromiter(map(itemgetter(0), pairs), dtype="float64", count=len(pairs))
    return ts, to_floats(list(map(itemgetter(1), pairs))), lengths


def _repeat(per_series: list[str], lengths: np.ndarray) -> np.ndarray:
    """One label value per series, repeated for each of its samples (object array)."""
    return np.repeat(np.asarray(per_series, dtype=object), lengths)


_NUMBER = (int, float)


def _in_range(values: list[Any]) -> bool:
    """True when every (numeric) timestamp is in [0, MAX_TIMESTAMP) (NaN is not)."""
    if not values:
        return True
    try:
        ts = np.asarray([v[0] for v in values], dtype="float64")
    except OverflowError:  # an integer beyond float64
        return False
    return bool(((ts >= 0) & (ts < MAX_TIMESTAMP)).all())


def _find_bad_sample(values: list[Any], at: str, where: str) -> None:
    """Raise MetricsSourceError naming the first sample that is not [timestamp, "value"]."""
    for j, sample in enumerate(values):
        if not (isinstance(sample, list) and len(sample) == 2):
            raise _malformed(where, f"{at} sample {j} is {_echo(sample)}, not [time, value]")
        ts, value = sample
        if isinstance(ts, bool) or not isinstance(ts, int | float):
            raise _malformed(where, f"{at} sample {j} has the non-numeric timestamp {_echo(ts)}")
        if not 0 <= ts < MAX_TIMESTAMP:  # also refuses NaN
            raise _malformed(where, f"{at} sample {j} has the timestamp {_echo(ts)} out of range")
        if not isinstance(value, str):
            raise _malformed(where, f"{at} sample {j} has the value {_echo(value)}, not a string")
    raise _malformed(where, f"{at} has a sample that is not [time, value]")


def _check_series(series: Any, at: str, where: str) -> None:
    """Raise MetricsSourceError unless ``series`` has string labels and valid samples."""
    if not isinstance(series, dict):
        raise _malformed(where, f"{at} is a {type(series).__name__}, not an object")
    labels = series.get("metric")
    if not isinstance(labels, dict):
        raise _malformed(where, f"{at} has no 'metric' labels object")
    for name, value in labels.items():
        if not isinstance(value, str):
            raise _malformed(where, f"{at} label {_echo(name)} is {_echo(value)}, not a string")
    values = series.get("values")
    if not isinstance(values, list):
        what = "one 'value' (an instant vector)" if "value" in series else "no 'values' list"
        raise _malformed(where, f"{at} has {what}")
    well_typed = all(
        type(v) is list and len(v) == 2 and type(v[0]) in _NUMBER and type(v[1]) is str
        for v in values
    )
    if not well_typed or not _in_range(values):
        _find_bad_sample(values, at, where)
    try:
        np.asarray([v[1] for v in values], dtype="float64")
    except ValueError:
        for j, (_, value) in enumerate(values):
            try:
                float(value)
            except ValueError:
                raise _malformed(
                    where, f"{at} sample {j} has the value {_echo(value)}, not a number"
                ) from None
        raise _malformed(where, f"{at} has a value that is not a number") from None


def strip_port(instance: str) -> str:
    """Return ``host`` from ``host:port`` (IPv6 ``[::1]:9100`` too); leave other values alone."""
    if instance.startswith("["):
        host, _, rest = instance[1:].partition("]")
        return host if rest.startswith(":") or not rest else instance
    host, sep, port = instance.rpartition(":")
    if sep and port.isdigit() and host:
        return host
    return instance


def gpu_frame(
    metric: str, matrix: list[dict[str, Any]], label_map: Mapping[str, str]
) -> tuple[pd.DataFrame | None, int]:
    """Tidy one DCGM metric's matrix; return it and how many series lacked node/GPU labels."""
    node_l, gpu_l, inst_l = label_map["node"], label_map["gpu"], label_map["instance"]
    kept: list[dict[str, Any]] = []
    nodes: list[str] = []
    gpus: list[str] = []
    bad = 0
    for series in matrix:
        labels = series["metric"]
        node = labels.get(node_l) or (strip_port(labels[inst_l]) if labels.get(inst_l) else None)
        gpu = labels.get(gpu_l)
        if not node or gpu is None:
            bad += 1
            continue
        kept.append(series)
        nodes.append(intern(str(node)))
        gpus.append(intern(str(gpu)))
    ts, vals, lengths = flat_samples(kept)
    if not len(ts):
        return None, bad
    df = pd.DataFrame(
        {
            "ts": to_timestamps(ts),
            "node": _repeat(nodes, lengths),
            "gpu": _repeat(gpus, lengths),
            "metric": metric,
            "value": vals,
        }
    )
    if len(set(zip(nodes, gpus, strict=True))) < len(nodes):
        # two series for one (node, gpu), e.g. two exporters: one value per step
        df = df.drop_duplicates(subset=["ts", "node", "gpu"], keep="last")
    return df, bad


def node_frame(
    metric: str, matrix: list[dict[str, Any]], label_map: Mapping[str, str]
) -> pd.DataFrame:
    """Tidy one node metric's matrix (node from ``instance`` without its port)."""
    inst_l, sensor_l = label_map["instance"], label_map["sensor"]
    kept: list[dict[str, Any]] = []
    nodes: list[str] = []
    sensors: list[str] = []
    for series in matrix:
        labels = series["metric"]
        node = strip_port(labels.get(inst_l, "") or labels.get("Hostname", ""))
        if not node:
            continue
        sensor = labels.get(sensor_l) or labels.get("sensor") or ""
        if sensor_l != "sensor" and labels.get("chip") and labels.get("sensor"):
            sensor = f"{labels['chip']}/{labels['sensor']}"
        kept.append(series)
        nodes.append(intern(str(node)))
        sensors.append(intern(str(sensor)))
    ts, vals, lengths = flat_samples(kept)
    return pd.DataFrame(
        {
            "ts": to_timestamps(ts),
            "node": pd.Series(_repeat(nodes, lengths), dtype="object"),
            "metric": metric,
            "sensor": pd.Series(_repeat(sensors, lengths), dtype="object"),
            "value": vals,
        }
    )


def component_frame(name: str, matrix: list[dict[str, Any]]) -> pd.DataFrame:
    """Tidy one component metric; several series of one component are averaged."""
    kept = [series for series in matrix if series["metric"].get(COMPONENT_LABEL)]
    ts, vals, lengths = flat_samples(kept)
    comps = [intern(str(series["metric"][COMPONENT_LABEL])) for series in kept]
    df = pd.DataFrame(
        {
            "ts": to_timestamps(ts),
            "component": pd.Series(_repeat(comps, lengths), dtype="object"),
            "metric": name,
            "value": vals,
        }
    )
    if df.duplicated(subset=["ts", "component"]).any():
        logger.warning("component metric %s returns several series per component: averaged", name)
        df = df.groupby(["ts", "component", "metric"], as_index=False)["value"].mean()
    return df


def up_frame(matrix: list[dict[str, Any]], label_map: Mapping[str, str]) -> pd.DataFrame:
    """Tidy ``up``: one row per target and step, node from ``instance`` without its port."""
    inst_l = label_map["instance"]
    ts, vals, lengths = flat_samples(matrix)
    if not len(ts):
        return FleetFrames.empty_frame(UP_COLUMNS)
    nodes = [intern(strip_port(str(series["metric"].get(inst_l, "")))) for series in matrix]
    jobs = [intern(str(series["metric"].get("job", ""))) for series in matrix]
    return concat_frames(
        [
            pd.DataFrame(
                {
                    "ts": to_timestamps(ts),
                    "node": pd.Series(_repeat(nodes, lengths), dtype="object"),
                    "job": pd.Series(_repeat(jobs, lengths), dtype="object"),
                    "value": vals,
                }
            )
        ],
        UP_COLUMNS,
    )


def to_floats(values: list[Any]) -> np.ndarray:
    """Prometheus sample values (strings such as "41", "NaN", "+Inf") as float64."""
    try:
        return np.asarray(values, dtype="float64")
    except (ValueError, TypeError):  # not from parse_matrix: coerce rather than fail the fetch
        return pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").to_numpy(
            dtype="float64"
        )


def to_timestamps(seconds: Iterable[Any] | np.ndarray) -> pd.Series:
    """Unix seconds (floats) -> UTC timestamps."""
    values = seconds if isinstance(seconds, np.ndarray) else list(seconds)
    return pd.to_datetime(pd.Series(values, dtype="float64"), unit="s", utc=True)


def concat_frames(parts: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    """Concatenate tidy parts in column order, sorted; an empty typed frame if none.

    The parts are not joined into one frame first: their order is found from the parts
    (:func:`sorted_order`) and each column joined and put in that order on its own, so a large
    read (a rolling read's kept rows and its new minutes) is held once more a column at a
    time, not a whole frame at a time."""
    given = [p for p in parts if not p.empty]
    if not given:
        return FleetFrames.empty_frame(columns)
    keys = [c for c in columns if c not in ("value", "ts")] + ["ts"]
    tidy = [t for t in (_tidy(p, columns) for p in given) if t is not None]
    if len(tidy) < len(given):  # a part without every column: joined as pandas joins them
        tidy, order = given, None
    else:
        order = sorted_order(tidy, keys)
    if order is None:  # the sort itself, on the parts joined (as pandas joins and orders them)
        df = pd.concat(tidy, ignore_index=True)
        out = _tidy(df, columns)
        if out is None:
            raise KeyError(f"tidy frames need the columns {columns}, got {tuple(df.columns)}")
        out = out.sort_values(keys, kind="stable")
        out.index = pd.RangeIndex(len(out))  # a new frame: renumbered in place, not copied again
        return out
    # copy=False: each column is new already (pandas would copy it again into one block per
    # dtype, a second copy of the whole frame)
    return pd.DataFrame({c: _joined(tidy, c).array.take(order) for c in columns}, copy=False)


def _joined(parts: list[pd.DataFrame], column: str) -> pd.Series:
    """One column of the parts, one after the other (the part's own when there is one)."""
    return parts[0][column] if len(parts) == 1 else pd.concat([p[column] for p in parts])


def _tidy(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame | None:
    """``df``'s ``columns`` in that order, the values float64, without the rows whose value is
    NaN: the frame itself when it is that already; None when a column is missing."""
    if not set(columns) <= set(df.columns):
        return None
    if tuple(df.columns) != columns:
        df = df[list(columns)]
    if df["value"].dtype != np.float64:
        df = df.assign(value=df["value"].astype("float64"))
    kept = df["value"].notna().to_numpy()
    return df if kept.all() else df[kept]


def concat_fleet_frames(
    parts: Sequence[FleetFrames], start: datetime, end: datetime, step: timedelta
) -> FleetFrames:
    """Reads of consecutive parts of ``[start, end]`` as one read of it: each frame's parts
    concatenated and sorted as a source's answers are (:func:`concat_frames`)."""
    return FleetFrames(
        gpu=concat_frames([p.gpu for p in parts], GPU_COLUMNS),
        node=concat_frames([p.node for p in parts], NODE_COLUMNS),
        component=concat_frames([p.component for p in parts], COMPONENT_COLUMNS),
        up=concat_frames([p.up for p in parts], UP_COLUMNS),
        start=start,
        end=end,
        step=step,
    )


def sorted_order(
    df: pd.DataFrame | Sequence[pd.DataFrame], keys: list[str]
) -> npt.NDArray[np.intp] | None:
    """The positions of ``df.sort_values(keys, kind="stable")`` (text keys, then a timestamp),
    found by sorting the runs of rows that share their text keys; None where that does not give
    that order (a key that is not text, a NaT, a run whose times go back, runs of one series
    that overlap in time). ``df`` may be parts, as if concatenated (positions in that).

    A tidy frame's samples come in runs of one series (one label set, times ascending): only
    each run's first labels are factorised (sorted, as pandas orders text) and the runs sorted
    stably by them. Ties of every key keep the rows' order, as in a stable sort.
    """
    parts = [df] if isinstance(df, pd.DataFrame) else list(df)
    *text, time_key = keys
    n = sum(len(p) for p in parts)
    stamps = [p[time_key] for p in parts]
    kind = stamps[0].dtype if stamps else None
    if n == 0 or not isinstance(kind, pd.DatetimeTZDtype | np.dtype) or kind.kind != "M":
        return None
    if any(t.dtype != kind for t in stamps):  # another unit or zone: as pandas would join them
        return None
    ints = np.concatenate([np.asarray(t.array.asi8, dtype=np.int64) for t in stamps])
    if (ints == np.iinfo(np.int64).min).any():  # NaT
        return None
    cols_of = [[p[k].to_numpy() for k in text] for p in parts]
    if any(c.dtype != object for cols in cols_of for c in cols):
        return None
    firsts = np.cumsum([0] + [len(p) for p in parts[:-1]])
    heads_of = [  # each part's runs (a part's first row always starts one)
        run_heads(*cols) if cols else np.zeros(1, dtype=np.intp) for cols in cols_of
    ]
    starts = np.concatenate([h + f for h, f in zip(heads_of, firsts, strict=True)])
    change = np.zeros(n, dtype=bool)
    change[starts] = True
    if (np.diff(ints)[~change[1:]] < 0).any():  # a run's times go back
        return None
    run_key = np.zeros(len(starts), dtype=np.int64)
    size = 1
    for i in range(len(text)):
        heads = np.concatenate([cols[i][h] for cols, h in zip(cols_of, heads_of, strict=True)])
        if not all(isinstance(v, str) for v in heads):
            return None
        codes, uniques = pd.factorize(heads, sort=True)
        size *= max(len(uniques), 1)
        if size >= 2**62:
            return None
        run_key = run_key * max(len(uniques), 1) + codes
    ends = np.append(starts[1:], n)
    runs = np.argsort(run_key, kind="stable")
    key_s, start_s, end_s = run_key[runs], starts[runs], ends[runs]
    same = key_s[1:] == key_s[:-1]
    if (ints[end_s[:-1] - 1][same] > ints[start_s[1:]][same]).any():  # one series' runs overlap
        return None
    lengths = end_s - start_s
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(start_s - offsets, lengths) + np.arange(n)
