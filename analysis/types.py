"""Neutral, frozen data objects shared by every layer: topology, frames, faults, incidents.

Nothing here knows Slack, SQL or HTTP. ``bot/`` renders these; ``storage/`` persists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

EntityKind = Literal["gpu", "node", "rack", "pdu", "cooling", "switch"]
ComponentKind = Literal["pdu", "cooling", "switch"]
Severity = Literal["info", "warning", "critical"]
FactorBasis = Literal["attribution", "detector", "deviation", "rule"]
#: What an explanation factor's share can rest on (:class:`Factor`).
FACTOR_BASES: tuple[FactorBasis, ...] = ("attribution", "detector", "deviation", "rule")

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

# Tidy frame columns (long format, one row per sample).
GPU_COLUMNS: tuple[str, ...] = ("ts", "node", "gpu", "metric", "value")
NODE_COLUMNS: tuple[str, ...] = ("ts", "node", "metric", "sensor", "value")
COMPONENT_COLUMNS: tuple[str, ...] = ("ts", "component", "metric", "value")
UP_COLUMNS: tuple[str, ...] = ("ts", "node", "job", "value")


@dataclass(frozen=True, order=True)
class GpuRef:
    """One GPU: the node's name (DCGM ``Hostname``) and the GPU index (DCGM ``gpu``)."""

    node: str
    gpu: str

    @property
    def key(self) -> str:
        """Return the ``<node>/<gpu>`` key used in JSON, faults and Slack."""
        return f"{self.node}/{self.gpu}"

    @classmethod
    def parse(cls, key: str) -> GpuRef:
        """Parse ``<node>/<gpu>``; raise ValueError naming the expected form."""
        node, sep, gpu = key.rpartition("/")
        if not sep or not node or not gpu:
            raise ValueError(
                f"{key!r} is not a GPU key: expected '<node>/<gpu>', e.g. 'gpu-node-007/3'"
            )
        return cls(node=node, gpu=gpu)


@dataclass(frozen=True)
class Component:
    """An upstream facility component (PDU, cooling unit, switch) and its metrics as PromQL."""

    id: str
    kind: ComponentKind
    metrics: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rack:
    """A rack: its nodes and the components that feed, cool and connect all of them."""

    id: str
    nodes: tuple[str, ...]
    power: tuple[str, ...] = ()
    cooling: tuple[str, ...] = ()
    network: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeOverride:
    """Per-node replacement of the rack's power, cooling or network components (None = inherit)."""

    power: tuple[str, ...] | None = None
    cooling: tuple[str, ...] | None = None
    network: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Topology:
    """The physical layout: racks, their nodes and the shared components upstream of them."""

    racks: tuple[Rack, ...]
    components: Mapping[str, Component] = field(default_factory=dict)
    node_overrides: Mapping[str, NodeOverride] = field(default_factory=dict)

    def rack_of(self, node: str) -> Rack | None:
        """Return the rack holding ``node``, or None when the file does not list it."""
        for rack in self.racks:
            if node in rack.nodes:
                return rack
        return None

    def upstream_of(self, node: str) -> dict[str, tuple[str, ...]]:
        """Return the power/cooling/network component ids that ``node`` depends on."""
        rack = self.rack_of(node)
        base = {
            "power": rack.power if rack else (),
            "cooling": rack.cooling if rack else (),
            "network": rack.network if rack else (),
        }
        override = self.node_overrides.get(node)
        if override is not None:
            for role in ("power", "cooling", "network"):
                value = getattr(override, role)
                if value is not None:
                    base[role] = value
        return base

    @property
    def nodes(self) -> tuple[str, ...]:
        """Return every node named in the file, in file order."""
        return tuple(n for rack in self.racks for n in rack.nodes)

    def component_kind(self, component_id: str) -> str:
        """Return the kind of a component id (declared, or inferred from its role in racks)."""
        if component_id in self.components:
            return self.components[component_id].kind
        for rack in self.racks:
            if component_id in rack.power:
                return "pdu"
            if component_id in rack.cooling:
                return "cooling"
            if component_id in rack.network:
                return "switch"
        for override in self.node_overrides.values():
            if override.power and component_id in override.power:
                return "pdu"
            if override.cooling and component_id in override.cooling:
                return "cooling"
            if override.network and component_id in override.network:
                return "switch"
        raise KeyError(component_id)


@dataclass(frozen=True)
class Reductions:
    """The feature plan's per-GPU reductions, computed where the data lives (the TSDB).

    ``table``: index GPU key, one float column per reduction (``analysis.feature_plan``), NaN
    where a GPU had no value; reduced at ``at`` with the plan's ``window``, ``recent`` and ``step``.
    """

    at: datetime
    window: timedelta
    recent: timedelta
    step: timedelta
    table: pd.DataFrame


@dataclass(frozen=True)
class FleetFrames:
    """Everything one fetch returns, as tidy long frames (UTC timestamps, float values).

    ``gpu``: ts, node, gpu, metric, value (DCGM metric names, e.g. ``DCGM_FI_DEV_GPU_TEMP``).
    ``node``: ts, node, metric, sensor, value (ipmi/node exporter names; ``sensor`` is the
    ``name`` label such as ``FAN2`` or ``Inlet Temp``, empty when the metric has none).
    ``component``: ts, component, metric, value (``metric`` is the key in the topology file).
    ``up``: ts, node, job, value (Prometheus ``up`` of each scrape target, 1 or 0).
    ``reduced``: the GPUs' own-series reductions at ``end`` when the source computed them (the
    ``gpu`` frame then holds only the metrics the peer context compares raw); None when the
    features reduce the ``gpu`` frame themselves.
    ``lead``: GPU rows of the peer metrics in the minutes before ``start`` (the samples the
    thermal lag of the window's first rows reads, ``analysis.thermal.LEAD_IN``); None: none
    were read.
    ``fit_reduced``: a fit's history only: the GPUs' own-series reductions at each cycle end the
    fit featurises (``Scorer.history_times``), when the source computed them; the ``gpu`` frame
    then holds only the peer metrics, raw. None when the features reduce the ``gpu`` frame.
    ``fit_spans``: a fit's history too large to hold at once (a large fleet's day): its cycle
    windows, each read when it is iterated (a span of overlapping windows, with its cycles'
    ``fit_reduced``), one at a time. The ``gpu`` frame then holds only the samples the thermal
    constants are learnt from (``analysis.thermal``: the slope's timestamps for every GPU, the
    lag's nodes raw); ``node``, ``component`` and ``up`` are the spans'.
    """

    gpu: pd.DataFrame
    node: pd.DataFrame
    component: pd.DataFrame
    up: pd.DataFrame
    start: datetime
    end: datetime
    step: timedelta
    reduced: Reductions | None = None
    lead: pd.DataFrame | None = None
    fit_reduced: tuple[Reductions, ...] | None = None
    fit_spans: Sequence[FleetFrames] | None = None

    @staticmethod
    def empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
        """Return an empty frame with the given tidy columns and proper dtypes."""
        data: dict[str, Any] = {}
        for col in columns:
            if col == "ts":
                data[col] = pd.Series([], dtype="datetime64[ns, UTC]")
            elif col == "value":
                data[col] = pd.Series([], dtype="float64")
            else:
                data[col] = pd.Series([], dtype="object")
        return pd.DataFrame(data)

    @cached_property
    def gpus(self) -> tuple[GpuRef, ...]:
        """Return every GPU seen anywhere in the window, sorted (computed once per frames)."""
        if self.gpu.empty:
            return ()
        # rows in runs of one series (as read from a TSDB): only each run's first row is read;
        # rows in time order (a simulator's, a sorted history): hashed, as many runs as rows
        node, gpu = self.gpu["node"].to_numpy(), self.gpu["gpu"].to_numpy()
        heads = run_heads(node, gpu)
        if 2 * len(heads) > len(node):
            unique = self.gpu[["node", "gpu"]].drop_duplicates()
            node, gpu = unique["node"].to_numpy(), unique["gpu"].to_numpy()
        else:
            node, gpu = node[heads], gpu[heads]
        pairs = {(str(n), str(g)) for n, g in zip(node, gpu, strict=True)}
        return tuple(sorted(GpuRef(n, g) for n, g in pairs))

    def gpu_wide(
        self, metrics: Sequence[str] | None = None, *, with_lead: bool = False
    ) -> pd.DataFrame:
        """Return the GPU frame as one row per (GPU key, ts) and one column per metric.

        Parameters
        ----------
        metrics : the columns wanted, in this order (a metric without samples is a column of
            NaN); None: every metric present, sorted.
        with_lead : the ``lead`` rows too, as if joined before the frame's (``join_lead``),
            without copying them into one frame first.

        Returns
        -------
        pd.DataFrame
            Index (``key``, ``ts``) sorted, ``key`` being ``"<node>/<gpu>"``; columns named
            ``metric``. The last row wins for a repeated (key, ts, metric) cell: the same frame
            as ``drop_duplicates(keep="last").set_index([...]).unstack("metric")``.
        """
        lead = self.lead if with_lead and self.lead is not None and not self.lead.empty else None
        parts = [p for p in (lead, self.gpu) if p is not None]
        wide = _pivot_gpu([p if metrics is None else _of_metrics(p, metrics) for p in parts])
        if metrics is not None:
            wide = wide.reindex(columns=pd.Index(list(metrics), name="metric"))
        return wide


def run_heads(*columns: np.ndarray) -> np.ndarray:
    """The positions where any of ``columns`` differs from the row before (and 0): the first
    rows of the runs a tidy frame's series come in (``storage.promql_frames.sorted_order`` sorts
    them)."""
    n = len(columns[0])
    change = np.zeros(n, dtype=bool)
    if n:
        change[0] = True
    for col in columns:
        change[1:] |= col[1:] != col[:-1]
    return np.flatnonzero(change)


def factorize_runs(
    values: np.ndarray, *, sort: bool = False, use_na_sentinel: bool = False
) -> tuple[np.ndarray, Any]:
    """``pd.factorize(values, sort=sort, use_na_sentinel=use_na_sentinel)``, hashing only the
    first value of each run of equal values (each value first appears at a run's start, so the
    codes are the same); a tidy frame's label columns come in long runs."""
    heads = run_heads(values)
    codes, uniques = pd.factorize(values[heads], sort=sort, use_na_sentinel=use_na_sentinel)
    lengths = np.diff(np.append(heads, len(values)))
    return np.repeat(codes, lengths), uniques


def _of_metrics(g: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The rows of ``metrics`` (the frame itself when they all are: no copy)."""
    keep = g["metric"].isin(list(metrics)).to_numpy()
    return g if keep.all() else g[keep]


def _pivot_gpu(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Pivot tidy GPU rows (``parts`` one after the other, as if concatenated) to (key, ts) x
    metric, sorted; the last row wins for a repeated cell.

    Integer codes instead of hashing three columns per row: each (key, ts, metric) cell gets one
    code, and the last row of each code is kept (a dense grid when it is small enough, else a
    stable sort). The parts are joined a column at a time, each code array let go once used
    (at 100,000 GPUs a window's rows are 13 million: each array of them 100 MB).
    """
    given, parts = parts, [p for p in parts if not p.empty]
    if not parts:
        index = pd.MultiIndex.from_arrays(
            [pd.Index([], dtype=object), pd.Index(given[0]["ts"])], names=["key", "ts"]
        )
        return pd.DataFrame(
            np.empty((0, 0)), index=index, columns=pd.Index([], dtype=object, name="metric")
        )

    def column(name: str) -> np.ndarray:
        arrays = [p[name].to_numpy() for p in parts]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    node, node_u = factorize_runs(column("node"))
    gpu, gpu_u = factorize_runs(column("gpu"))
    pair = node.astype(np.int64) * len(gpu_u) + gpu
    del node, gpu
    pair, pair_u = pd.factorize(pair, sort=False)
    # labels as text ("<node>/<gpu>"); labels that only differ in type become one key
    text = [f"{node_u[p // len(gpu_u)]}/{gpu_u[p % len(gpu_u)]}" for p in pair_u]
    merged, uniq = pd.factorize(np.array(text, dtype=object), sort=False)
    pair, pair_keys = merged[pair], np.asarray(uniq, dtype=object)
    key_order = np.argsort(pair_keys, kind="stable")  # key codes in sorted key order
    key_rank = np.empty(len(pair_keys), dtype=np.int64)
    key_rank[key_order] = np.arange(len(pair_keys))
    row = key_rank[pair]  # the key's rank, then its row below
    del pair
    when = parts[0]["ts"] if len(parts) == 1 else pd.concat([p["ts"] for p in parts])
    ts, ts_u = pd.factorize(when, sort=True)
    del when
    n_ts = len(ts_u)
    row *= n_ts
    row += ts
    del ts
    metric, metric_u = factorize_runs(column("metric"), sort=True, use_na_sentinel=True)
    n_m = len(metric_u)
    cell = row * n_m + metric
    n_cells = len(pair_keys) * n_ts * n_m
    if n_cells <= max(4 * len(cell), 1 << 20):  # dense (key, ts, metric) grid: no sorting
        del row, metric
        flat = np.full(n_cells, -1, dtype=np.int64)
        np.maximum.at(flat, cell, np.arange(len(cell), dtype=np.int64))  # last row of each cell
        del cell
        grid = flat.reshape(-1, n_m)
        rows = np.flatnonzero((grid >= 0).any(axis=1))
        src = grid[rows]
        del flat, grid
        value = np.asarray(column("value"), dtype=float)
        values = np.where(src >= 0, value[np.maximum(src, 0)], np.nan)
    else:
        order = np.argsort(cell, kind="stable")
        ordered = cell[order]
        last_of = np.ones(len(ordered), dtype=bool)
        last_of[:-1] = ordered[1:] != ordered[:-1]
        last = order[last_of]  # the last row of each cell (stable sort keeps row order)
        rows, row_of = np.unique(row[last], return_inverse=True)
        values = np.full((len(rows), n_m), np.nan)
        values[row_of, metric[last]] = np.asarray(column("value"), dtype=float)[last]
    index = pd.MultiIndex.from_arrays(
        [pair_keys[key_order][rows // n_ts], ts_u[rows % n_ts]], names=["key", "ts"]
    )
    return pd.DataFrame(values, index=index, columns=pd.Index(metric_u, name="metric"))


@dataclass(frozen=True)
class Fault:
    """A fault, injected by the simulator or taken from a user's incident history (faults.json).

    ``signal_start`` is when the precursor's signal starts, where it is known to start after
    ``onset`` (the simulator's step and intermittent shapes are quiet at first); ``None``: at
    ``onset``. No warning can come before it.
    """

    id: str
    kind: str
    target: str
    affected: tuple[str, ...]
    onset: datetime
    failure: datetime | None = None
    signal_start: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the faults.json form of this fault."""
        out = {
            "id": self.id,
            "kind": self.kind,
            "target": self.target,
            "affected": list(self.affected),
            "onset": _rfc3339(self.onset),
            "failure": _rfc3339(self.failure) if self.failure else None,
        }
        if self.signal_start is not None:
            out["signal_start"] = _rfc3339(self.signal_start)
        return out


@dataclass(frozen=True)
class BenignEvent:
    """Something that moves the metrics but is no fault and must not page (ground truth).

    ``kind`` names it (``job_churn``, ``drain_reboot``, ``driver_update``, ``fan_profile``,
    ``ecc_burst``, ``ambient_change``, ``power_cap`` ...); ``target`` is the GPU key, node,
    component or ``fleet``; ``affected`` the GPU keys whose metrics it moves in ``[start, end]``.
    """

    id: str
    kind: str
    target: str
    affected: tuple[str, ...]
    start: datetime
    end: datetime

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form (``benign.json`` beside ``faults.json``)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "target": self.target,
            "affected": list(self.affected),
            "start": _rfc3339(self.start),
            "end": _rfc3339(self.end),
        }


@dataclass(frozen=True)
class GpuScore:
    """One GPU's calibrated risk in [0, 1] (higher = riskier)."""

    node: str
    gpu: str
    score: float

    @property
    def key(self) -> str:
        """Return ``<node>/<gpu>``."""
        return f"{self.node}/{self.gpu}"


@dataclass(frozen=True)
class RootCause:
    """The entity an incident is blamed on: a GPU key, node, rack or component id."""

    id: str
    kind: EntityKind


@dataclass(frozen=True)
class Factor:
    """One contributing cause in an explanation, with its share of the anomaly.

    ``basis`` says what the share rests on (:data:`FACTOR_BASES`): ``attribution`` a causal
    attribution (DoWhy), ``detector`` the detector's own evidence where no attribution was
    possible, ``deviation`` a ranking by robust z-score where no attribution was possible,
    ``rule`` a static rule that fired.
    """

    name: str
    entity: str
    share: float
    detail: str = ""
    basis: FactorBasis = "attribution"


@dataclass(frozen=True)
class Explanation:
    """Why an incident happened: a one-line summary and ranked factors."""

    summary: str
    factors: tuple[Factor, ...] = ()
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """One standardised deviation that put a GPU at risk: ``z`` robust sd of ``feature`` on ``gpu``.

    What a human judges when marking an incident a false alarm (:mod:`analysis.feedback`).
    """

    gpu: str
    feature: str
    z: float


@dataclass(frozen=True)
class Incident:
    """A neutral finding: at-risk GPUs grouped under the root cause that explains them.

    ``evidence`` holds the largest feature deviations of each affected GPU in the cycle it was
    last seen; old snapshots without it load with none.
    """

    id: str
    at: datetime
    severity: Severity
    score: float
    root_cause: RootCause
    gpus: tuple[GpuScore, ...]
    explanation: Explanation | None = None
    signals: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()

    @property
    def dedup_key(self) -> str:
        """Return the key that identifies the same incident across cycles."""
        return f"{self.root_cause.kind}:{self.root_cause.id}"

    @property
    def title(self) -> str:
        """Return the one-line headline a human reads first."""
        if self.root_cause.kind == "gpu":
            ref = GpuRef.parse(self.root_cause.id)
            return f"Check GPU {ref.gpu} on {ref.node}"
        n = len(self.gpus)
        noun = "GPU" if n == 1 else "GPUs"
        return f"{self.root_cause.id}: {n} {noun} at risk"

    def as_dict(self) -> dict[str, Any]:
        """Return the stable JSON form used by ``scan --format json`` and the state store."""
        exp = self.explanation
        return {
            "id": self.id,
            "at": _rfc3339(self.at),
            "severity": self.severity,
            "score": round(float(self.score), 4),
            "root_cause": {"id": self.root_cause.id, "kind": self.root_cause.kind},
            "gpus": [
                {"node": g.node, "gpu": g.gpu, "score": round(float(g.score), 4)} for g in self.gpus
            ],
            "explanation": {
                "summary": exp.summary if exp else "",
                "factors": [
                    {
                        "name": f.name,
                        "entity": f.entity,
                        "share": round(float(f.share), 4),
                        "basis": f.basis,
                    }
                    | ({"detail": f.detail} if f.detail else {})
                    for f in (exp.factors if exp else ())
                ],
                "hints": list(exp.hints) if exp else [],
            },
            "signals": list(self.signals),
            "evidence": [
                {"gpu": e.gpu, "feature": e.feature, "z": round(float(e.z), 3)}
                for e in self.evidence
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Incident:
        """Rebuild an incident from its ``as_dict`` form."""
        exp = data.get("explanation") or {}
        return cls(
            id=str(data["id"]),
            at=parse_time(str(data["at"])),
            severity=data["severity"],
            score=float(data["score"]),
            root_cause=RootCause(id=data["root_cause"]["id"], kind=data["root_cause"]["kind"]),
            gpus=tuple(
                GpuScore(str(g["node"]), str(g["gpu"]), float(g["score"])) for g in data["gpus"]
            ),
            explanation=Explanation(
                summary=exp.get("summary", ""),
                factors=tuple(
                    Factor(
                        f["name"],
                        f["entity"],
                        float(f["share"]),
                        f.get("detail", ""),
                        _basis(f.get("basis"), f.get("detail", "")),
                    )
                    for f in exp.get("factors", [])
                ),
                hints=tuple(exp.get("hints", [])),
            )
            if exp
            else None,
            signals=tuple(data.get("signals", [])),
            evidence=tuple(
                Evidence(str(e["gpu"]), str(e["feature"]), float(e["z"]))
                for e in data.get("evidence") or ()
            ),
        )


def _basis(value: object, detail: str) -> FactorBasis:
    """Return a stored factor's basis; a snapshot from before the field says it in its detail."""
    for basis in FACTOR_BASES:
        if value == basis:
            return basis
    if value is not None:
        raise ValueError(
            f"unknown factor basis {value!r}: expected one of {', '.join(FACTOR_BASES)}"
        )
    if "flagged by the detector" in detail:
        return "detector"
    if "causal attribution unavailable" in detail:
        return "deviation"
    return "attribution"


@dataclass(frozen=True)
class ScanResult:
    """The outcome of one cycle: when, how many GPUs were scored, and the incidents found."""

    at: datetime
    gpus_scored: int
    incidents: tuple[Incident, ...]
    scores: tuple[GpuScore, ...] = ()
    detector: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the stable ``scan --format json`` shape."""
        return {
            "at": _rfc3339(self.at),
            "gpus_scored": self.gpus_scored,
            "detector": self.detector,
            "incidents": [i.as_dict() for i in self.incidents],
        }


def _rfc3339(ts: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with a trailing Z."""
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime; raise ValueError with the form."""
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{text!r} is not an RFC 3339 time, e.g. 2026-11-22T10:00:00Z") from exc
    if ts is pd.NaT:
        raise ValueError(f"{text!r} is not an RFC 3339 time, e.g. 2026-11-22T10:00:00Z")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def format_time(ts: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC (``2026-11-22T10:00:00Z``)."""
    return _rfc3339(ts)


@dataclass(frozen=True)
class Assessment:
    """One scorer's view of one cycle: every GPU's risk, and the incidents it would raise.

    ``incidents`` carry no explanation yet (``analysis.explain`` adds it). ``features`` is the
    per-GPU feature table the scores came from (index: GPU key), when the scorer has one.
    """

    at: datetime
    scores: tuple[GpuScore, ...]
    incidents: tuple[Incident, ...]
    features: pd.DataFrame | None = None
