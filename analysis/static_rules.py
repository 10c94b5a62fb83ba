"""The static baseline as a scorer: the rules of ``deploy/prometheus/static-rules.yml`` on frames.

What GPU clusters run today: temperature above 85 °C for 5 minutes, a hardware XID, double-bit ECC
errors, a row-remap failure, a GPU whose series vanished, a scrape target down. The thresholds and
windows here mirror the YAML file (the tests evaluate that file on Prometheus and check that both
agree). Prometheus semantics are reproduced (by ``analysis.static_eval``) on the step grid ending
at ``at``: an instant value is the last sample at most ``lookback`` old, range windows are closed
``[t - w, t]``, and a rule fires once its condition held at every evaluation for ``for``.

Pure: frames in, an Assessment out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Self

import networkx as nx
import numpy as np
import pandas as pd

from analysis.catalog import STATIC_RULE_XIDS
from analysis.static_eval import _Grid, _ns, _Series
from analysis.types import (
    Assessment,
    Explanation,
    Factor,
    FleetFrames,
    GpuRef,
    GpuScore,
    Incident,
    RootCause,
    Severity,
    format_time,
)

if TYPE_CHECKING:
    from analysis.feedback import Allowances
    from analysis.fit_window import Exclusion


@dataclass(frozen=True)
class StaticRule:
    """One rule of the static baseline: its alert name, short name, severity and main metric."""

    name: str
    alert: str
    severity: Severity
    metric: str
    for_: timedelta
    describe: str


RULES: tuple[StaticRule, ...] = (
    StaticRule(
        "temperature",
        "GpuTemperatureHigh",
        "warning",
        "DCGM_FI_DEV_GPU_TEMP",
        timedelta(minutes=5),
        "GPU temperature above {threshold:g} °C for 5 minutes",
    ),
    StaticRule(
        "hardware_xid",
        "GpuHardwareXid",
        "critical",
        "DCGM_FI_DEV_XID_ERRORS",
        timedelta(0),
        "hardware XID {xid}",
    ),
    StaticRule(
        "dbe",
        "GpuDoubleBitEccError",
        "critical",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        timedelta(0),
        "double-bit ECC errors in the last 30 minutes",
    ),
    StaticRule(
        "row_remap_failure",
        "GpuRowRemapFailure",
        "critical",
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        timedelta(0),
        "row remapping failed",
    ),
    StaticRule(
        "vanished",
        "GpuSeriesVanished",
        "critical",
        "DCGM_FI_DEV_GPU_TEMP",
        timedelta(0),
        "stopped reporting metrics (seen in the last hour, silent for 5 minutes)",
    ),
    StaticRule(
        "target_down",
        "ScrapeTargetDown",
        "warning",
        "up",
        timedelta(minutes=2),
        "scrape target {job} down for 2 minutes",
    ),
)
RULES_BY_NAME: dict[str, StaticRule] = {r.name: r for r in RULES}
RULE_METRICS: tuple[str, ...] = tuple(dict.fromkeys(r.metric for r in RULES if r.metric != "up"))


@dataclass(frozen=True)
class Firing:
    """One rule firing at one time for one GPU (``gpu`` None for node-level rules)."""

    rule: str
    node: str
    gpu: str | None
    detail: str = ""

    @property
    def entity(self) -> str:
        """Return ``<node>/<gpu>`` or the node."""
        return f"{self.node}/{self.gpu}" if self.gpu is not None else self.node


@dataclass
class StaticRules:
    """Scorer applying the static Prometheus rules to frames (detector name ``static``).

    Parameters mirror ``deploy/prometheus/static-rules.yml``; change both together.
    """

    temp_threshold: float = 85.0
    hardware_xids: tuple[int, ...] = tuple(sorted(STATIC_RULE_XIDS))
    dbe_window: timedelta = timedelta(minutes=30)
    vanish_lookback: timedelta = timedelta(hours=1)
    vanish_after: timedelta = timedelta(minutes=5)
    lookback: timedelta = timedelta(minutes=5)
    name: str = field(default="static", init=False)
    needs_history: bool = field(default=False, init=False)
    # Each rule carries its Prometheus ``for:``: a firing has already persisted.
    self_gating: bool = field(default=True, init=False)
    # The rules read raw series, no feature reductions.
    feature_window: timedelta | None = field(default=None, init=False)
    exclude: tuple[Exclusion, ...] = field(default=(), init=False)
    # Fixed thresholds learn nothing from false alarms: the pipeline may set these, they are unused.
    allowances: Allowances = field(default_factory=dict, init=False)
    usual_before: pd.DataFrame | None = field(default=None, init=False)

    @property
    def min_window(self) -> timedelta:
        """Return how much history before ``at`` the rules look at (the longest range)."""
        return max(self.vanish_lookback, self.dbe_window, timedelta(minutes=5) + self.lookback)

    def fit_start(self, start: datetime, end: datetime) -> datetime:
        """``start``: the rules learn nothing from a history."""
        return start

    def history_times(
        self, start: datetime, end: datetime, gpus: int | None = None
    ) -> list[datetime]:
        """None: the rules featurise no history."""
        return []

    def fit(
        self, history: FleetFrames, graph: nx.DiGraph, *, fleet: nx.DiGraph | None = None
    ) -> Self:
        """Nothing to learn: static thresholds. Returns self."""
        return self

    # ------------------------------------------------------------------ evaluation

    def firing(self, frames: FleetFrames, at: datetime) -> list[Firing]:
        """Return every rule firing at ``at``, judged on the samples up to ``at`` only."""
        return self._evaluate(frames, at)[0]

    def _evaluate(self, frames: FleetFrames, at: datetime) -> tuple[list[Firing], list[GpuRef]]:
        """Fire every rule at ``at``; also return the GPUs seen up to ``at``.

        The GPU frame is split into series once (integer codes, numpy arrays); each rule then works
        on the rows of its metric only.
        """
        grid = _Grid.build(frames, at)
        gpu = _Series.of(frames.gpu, ("node", "gpu"), grid.at_ns, metrics=RULE_METRICS)
        out: list[Firing] = []
        temp = gpu.metric("DCGM_FI_DEV_GPU_TEMP")
        if temp is not None:
            out += self._temperature(grid, gpu, temp)
            out += self._vanished(grid, gpu, temp)
        xid = gpu.metric("DCGM_FI_DEV_XID_ERRORS")
        if xid is not None:
            out += self._xid(grid, gpu, xid)
        dbe = gpu.metric("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")
        if dbe is not None:
            out += self._dbe(grid, gpu, dbe)
        remap = gpu.metric("DCGM_FI_DEV_ROW_REMAP_FAILURE")
        if remap is not None:
            for s, v in grid.last_values(gpu, remap, self.lookback):
                if v > 0:
                    node, g = gpu.keys[s]
                    out.append(Firing("row_remap_failure", str(node), str(g), "row remap failed"))
        out += self._target_down(grid, frames.up)
        seen = sorted({GpuRef(str(n), str(g)) for n, g in gpu.seen_keys()})
        return sorted(out, key=lambda f: (f.node, f.gpu or "", f.rule)), seen

    def _temperature(self, grid: _Grid, gpu: _Series, rows: np.ndarray) -> list[Firing]:
        """DCGM_FI_DEV_GPU_TEMP > threshold at every evaluation of the last 5 minutes."""
        rule = RULES_BY_NAME["temperature"]
        wide, cols = grid.instant(gpu, rows, self.lookback)
        with np.errstate(invalid="ignore"):
            cond = wide > self.temp_threshold
        out = []
        for j in np.flatnonzero(grid.held(cond, rule.for_)):
            node, g = gpu.keys[cols[j]]
            value = float(wide[-1, j])
            out.append(
                Firing(
                    "temperature",
                    str(node),
                    str(g),
                    f"{value:.1f} °C > {self.temp_threshold:g} °C for {_minutes(rule.for_)}",
                )
            )
        return out

    def _xid(self, grid: _Grid, gpu: _Series, rows: np.ndarray) -> list[Firing]:
        """The last XID code is a hardware one."""
        hw = set(self.hardware_xids)
        out = []
        for s, v in grid.last_values(gpu, rows, self.lookback):
            if not math.isnan(v) and int(v) == v and int(v) in hw:
                node, g = gpu.keys[s]
                out.append(Firing("hardware_xid", str(node), str(g), f"XID {int(v)}"))
        return out

    def _dbe(self, grid: _Grid, gpu: _Series, rows: np.ndarray) -> list[Firing]:
        """increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[30m]) > 0 (counter resets count as increases)."""
        lo = grid.at_ns - _ns(self.dbe_window)
        rows = rows[gpu.ts[rows] >= lo]
        if len(rows) == 0:
            return []
        series = gpu.codes[rows]
        rows = rows[np.lexsort((gpu.ts[rows], series))]  # by series, then time (stable)
        series = gpu.codes[rows]
        v = gpu.values[rows]
        same = series[1:] == series[:-1]  # consecutive samples of one series
        d = np.diff(v)
        with np.errstate(invalid="ignore"):
            step_inc = np.where(d >= 0, d, v[1:])
        n = len(gpu.keys)
        inc = np.bincount(series[1:][same], weights=step_inc[same], minlength=n)
        counts = np.bincount(series, minlength=n)
        out = []
        for s in np.flatnonzero((counts >= 2) & (inc > 0)):
            node, g = gpu.keys[s]
            out.append(
                Firing("dbe", str(node), str(g), f"+{inc[s]:g} DBE in {_minutes(self.dbe_window)}")
            )
        return out

    def _vanished(self, grid: _Grid, gpu: _Series, rows: np.ndarray) -> list[Firing]:
        """Seen in [at - 1h, at] but no sample in [at - 5m, at]."""
        lo = grid.at_ns - _ns(self.vanish_lookback)
        recent = grid.at_ns - _ns(self.vanish_after)
        ts = gpu.ts[rows]
        keep = ts >= lo
        last = np.full(len(gpu.keys), np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last, gpu.codes[rows][keep], ts[keep])
        seen = last > np.iinfo(np.int64).min
        return [
            Firing(
                "vanished",
                str(gpu.keys[s][0]),
                str(gpu.keys[s][1]),
                f"last sample {format_time(pd.Timestamp(int(last[s]), tz='UTC').to_pydatetime())}",
            )
            for s in np.flatnonzero(seen & (last < recent))
        ]

    def _target_down(self, grid: _Grid, up: pd.DataFrame) -> list[Firing]:
        """up == 0 at every evaluation of the last 2 minutes (node from instance)."""
        series = _Series.of(up, ("node", "job"), grid.at_ns, metrics=None)
        if len(series.ts) == 0:
            return []
        rule = RULES_BY_NAME["target_down"]
        wide, cols = grid.instant(series, np.arange(len(series.ts)), self.lookback)
        held = grid.held(wide == 0, rule.for_)
        down = sorted(
            (series.keys[cols[j]] for j in np.flatnonzero(held)), key=lambda k: (k[0], k[1])
        )
        return [
            Firing("target_down", str(node), None, f"{job} target down for {_minutes(rule.for_)}")
            for node, job in down
        ]

    # ------------------------------------------------------------------ scorer

    def with_at_risk(
        self, assessment: Assessment, graph: nx.DiGraph, keys: Collection[str], signal: str
    ) -> Assessment:
        """``assessment``: the rules' risk is no calibrated chance, so none is held below them."""
        return assessment

    def assess(self, frames: FleetFrames, graph: nx.DiGraph, at: datetime) -> Assessment:
        """Fire the rules at ``at``; one incident per GPU, or per node when the node is gone."""
        order = [r.name for r in RULES]
        fired, seen = self._evaluate(frames, at)
        firings = sorted(fired, key=lambda f: order.index(f.rule))
        gpus_by_node: dict[str, list[GpuRef]] = {}
        for ref in seen:
            gpus_by_node.setdefault(ref.node, []).append(ref)
        per_gpu: dict[GpuRef, list[Firing]] = {}
        per_node: dict[str, list[Firing]] = {}
        for f in firings:
            if f.gpu is None:
                per_node.setdefault(f.node, []).append(f)
            else:
                per_gpu.setdefault(GpuRef(f.node, f.gpu), []).append(f)
        # A node whose every GPU vanished is one node incident, not N GPU incidents.
        for node, refs in gpus_by_node.items():
            if refs and all(any(f.rule == "vanished" for f in per_gpu.get(r, ())) for r in refs):
                per_node.setdefault(node, [])
        incidents: list[Incident] = []
        at_risk: set[GpuRef] = set()
        for node in sorted(per_node):
            refs = gpus_by_node.get(node, [])
            node_firings = list(per_node[node])
            for r in refs:
                node_firings += per_gpu.pop(r, [])
            at_risk.update(refs)
            incidents.append(self._incident("node", node, tuple(refs), node_firings, at))
        for ref in sorted(per_gpu):
            at_risk.add(ref)
            incidents.append(self._incident("gpu", ref.key, (ref,), per_gpu[ref], at))
        scores = tuple(
            GpuScore(r.node, r.gpu, 1.0 if r in at_risk else 0.0) for r in sorted(set(seen))
        )
        return Assessment(at=at, scores=scores, incidents=tuple(incidents), features=None)

    def _incident(
        self, kind: str, entity: str, refs: tuple[GpuRef, ...], firings: list[Firing], at: datetime
    ) -> Incident:
        """Build one incident from the rules firing on one GPU or node."""
        rules = sorted({f.rule for f in firings}, key=[r.name for r in RULES].index)
        critical = any(RULES_BY_NAME[r].severity == "critical" for r in rules)
        severity: Severity = "critical" if critical else "warning"
        factors: list[Factor] = []
        share = 1.0 / len(firings) if firings else 0.0
        for f in firings:
            rule = RULES_BY_NAME[f.rule]
            factors.append(Factor(rule.metric, f.entity, share, f.detail, basis="rule"))
        names = ", ".join(RULES_BY_NAME[r].alert for r in rules)
        if kind == "gpu":
            ref = refs[0]
            first = firings[0]
            summary = (
                f"GPU {ref.gpu} on {ref.node}: {names} "
                f"({'; '.join(f.detail for f in firings if f.detail) or first.rule})"
            )
        else:
            gone = sum(1 for f in firings if f.rule == "vanished")
            what = f"{gone} of {len(refs)} GPUs stopped reporting" if gone else names
            summary = f"Node {entity}: {what} ({names})"
        digest = hashlib.sha1(f"static|{kind}|{entity}|{format_time(at)}".encode()).hexdigest()
        return Incident(
            id=f"static-{digest[:12]}",
            at=at,
            severity=severity,
            score=1.0,
            root_cause=RootCause(id=entity, kind="gpu" if kind == "gpu" else "node"),
            gpus=tuple(GpuScore(r.node, r.gpu, 1.0) for r in refs),
            explanation=Explanation(summary=summary, factors=tuple(factors)),
            signals=tuple(sorted({_signal(f) for f in firings})),
        )


def _signal(f: Firing) -> str:
    """Short signal name of a firing: the rule, with the code for XIDs (``xid:79``)."""
    if f.rule == "hardware_xid":
        return "xid:" + f.detail.removeprefix("XID ")
    return f.rule


def _minutes(d: timedelta) -> str:
    """Render a duration as '5m'."""
    return f"{round(d.total_seconds() / 60):g}m"


def rule_names() -> Iterable[str]:
    """Return the short names of the static rules, in order."""
    return (r.name for r in RULES)
