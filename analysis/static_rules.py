"""The static baseline as a scorer: the rules of ``deploy/prometheus/static-rules.yml`` on frames.

What GPU clusters run today: temperature above 85 °C for 5 minutes, a hardware XID, double-bit ECC
errors, a row-remap failure, a GPU whose series vanished, a scrape target down. The thresholds and
windows here mirror the YAML file (``storage.rules`` evaluates that file on Prometheus; a test
checks that both agree). Prometheus semantics are reproduced on the step grid ending at ``at``:
an instant value is the last sample at most ``lookback`` old, range windows are closed
``[t - w, t]``, and a rule fires once its condition held at every evaluation for ``for``.

Pure: frames in, an Assessment out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Self

import networkx as nx
import numpy as np
import pandas as pd

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

HARDWARE_XIDS: tuple[int, ...] = (48, 61, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120, 140)


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
    hardware_xids: tuple[int, ...] = HARDWARE_XIDS
    dbe_window: timedelta = timedelta(minutes=30)
    vanish_lookback: timedelta = timedelta(hours=1)
    vanish_after: timedelta = timedelta(minutes=5)
    lookback: timedelta = timedelta(minutes=5)
    name: str = field(default="static", init=False)
    needs_history: bool = field(default=False, init=False)

    @property
    def min_window(self) -> timedelta:
        """Return how much history before ``at`` the rules look at (the longest range)."""
        return max(self.vanish_lookback, self.dbe_window, timedelta(minutes=5) + self.lookback)

    def fit(self, history: FleetFrames, graph: nx.DiGraph) -> Self:
        """Nothing to learn: static thresholds. Returns self."""
        return self

    # ------------------------------------------------------------------ evaluation

    def firing(self, frames: FleetFrames, at: datetime) -> list[Firing]:
        """Return every rule firing at ``at``, judged on the samples up to ``at`` only."""
        grid = _Grid.build(frames, at)
        out: list[Firing] = []
        gpu = frames.gpu[frames.gpu["ts"] <= grid.at]
        by_metric = {m: df for m, df in gpu.groupby("metric", sort=False)}
        temp = by_metric.get("DCGM_FI_DEV_GPU_TEMP")
        if temp is not None:
            out += self._temperature(grid, temp)
            out += self._vanished(grid, temp)
        xid = by_metric.get("DCGM_FI_DEV_XID_ERRORS")
        if xid is not None:
            out += self._xid(grid, xid)
        dbe = by_metric.get("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")
        if dbe is not None:
            out += self._dbe(grid, dbe)
        remap = by_metric.get("DCGM_FI_DEV_ROW_REMAP_FAILURE")
        if remap is not None:
            last = grid.last_values(remap, ["node", "gpu"], self.lookback)
            for (node, g), v in last.items():
                if v > 0:
                    out.append(Firing("row_remap_failure", str(node), str(g), "row remap failed"))
        out += self._target_down(grid, frames.up[frames.up["ts"] <= grid.at])
        return sorted(out, key=lambda f: (f.node, f.gpu or "", f.rule))

    def _temperature(self, grid: _Grid, temp: pd.DataFrame) -> list[Firing]:
        """DCGM_FI_DEV_GPU_TEMP > threshold at every evaluation of the last 5 minutes."""
        rule = RULES_BY_NAME["temperature"]
        wide = grid.instant(temp, ["node", "gpu"], self.lookback)
        cond = wide > self.temp_threshold
        held = grid.held(cond, rule.for_)
        out = []
        for col in held.index[held.to_numpy()]:
            node, g = col
            value = float(wide[col].iloc[-1])
            out.append(
                Firing(
                    "temperature",
                    str(node),
                    str(g),
                    f"{value:.1f} °C > {self.temp_threshold:g} °C for {_minutes(rule.for_)}",
                )
            )
        return out

    def _xid(self, grid: _Grid, xid: pd.DataFrame) -> list[Firing]:
        """The last XID code is a hardware one."""
        last = grid.last_values(xid, ["node", "gpu"], self.lookback)
        hw = set(self.hardware_xids)
        return [
            Firing("hardware_xid", str(node), str(g), f"XID {int(v)}")
            for (node, g), v in last.items()
            if not math.isnan(v) and int(v) == v and int(v) in hw
        ]

    def _dbe(self, grid: _Grid, dbe: pd.DataFrame) -> list[Firing]:
        """increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[30m]) > 0 (counter resets count as increases)."""
        lo = grid.at - pd.Timedelta(self.dbe_window)
        out = []
        for (node, g), grp in dbe[dbe["ts"] >= lo].groupby(["node", "gpu"], sort=True):
            v = grp.sort_values("ts")["value"].to_numpy(dtype=float)
            if len(v) < 2:
                continue
            d = np.diff(v)
            inc = np.where(d >= 0, d, v[1:]).sum()
            if inc > 0:
                out.append(
                    Firing("dbe", str(node), str(g), f"+{inc:g} DBE in {_minutes(self.dbe_window)}")
                )
        return out

    def _vanished(self, grid: _Grid, temp: pd.DataFrame) -> list[Firing]:
        """Seen in [at - 1h, at] but no sample in [at - 5m, at]."""
        lo = grid.at - pd.Timedelta(self.vanish_lookback)
        recent = grid.at - pd.Timedelta(self.vanish_after)
        last = temp[temp["ts"] >= lo].groupby(["node", "gpu"], sort=True)["ts"].max()
        return [
            Firing(
                "vanished",
                str(node),
                str(g),
                f"last sample {format_time(ts.to_pydatetime())}",
            )
            for (node, g), ts in last.items()
            if ts < recent
        ]

    def _target_down(self, grid: _Grid, up: pd.DataFrame) -> list[Firing]:
        """up == 0 at every evaluation of the last 2 minutes (node from instance)."""
        if up.empty:
            return []
        rule = RULES_BY_NAME["target_down"]
        wide = grid.instant(up, ["node", "job"], self.lookback)
        held = grid.held(wide == 0, rule.for_)
        return [
            Firing("target_down", str(node), None, f"{job} target down for {_minutes(rule.for_)}")
            for node, job in held.index[held.to_numpy()]
        ]

    # ------------------------------------------------------------------ scorer

    def assess(self, frames: FleetFrames, graph: nx.DiGraph, at: datetime) -> Assessment:
        """Fire the rules at ``at``; one incident per GPU, or per node when the node is gone."""
        order = [r.name for r in RULES]
        firings = sorted(self.firing(frames, at), key=lambda f: order.index(f.rule))
        upto = frames.gpu.loc[frames.gpu["ts"] <= _utc(at), ["node", "gpu"]].drop_duplicates()
        seen = sorted(GpuRef(str(n), str(g)) for n, g in upto.itertuples(index=False))
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
            factors.append(Factor(name=rule.metric, entity=f.entity, share=share, detail=f.detail))
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


@dataclass(frozen=True)
class _Grid:
    """The evaluation grid: every ``step`` back from ``at`` to the frames' start."""

    at: pd.Timestamp
    step: pd.Timedelta
    times: pd.DatetimeIndex

    @classmethod
    def build(cls, frames: FleetFrames, at: datetime) -> _Grid:
        """Anchor the grid at ``at`` and reach back to the window's start."""
        at_ts = _utc(at)
        step = pd.Timedelta(frames.step)
        n = max(0, math.ceil((at_ts - _utc(frames.start)) / step))
        times = pd.DatetimeIndex([at_ts - step * k for k in range(n, -1, -1)])
        return cls(at_ts, step, times)

    def instant(self, df: pd.DataFrame, keys: list[str], lookback: timedelta) -> pd.DataFrame:
        """Wide frame (grid x series): the last sample at most ``lookback`` old at each time."""
        cells = np.ceil((df["ts"] - self.times[0]) / self.step).astype(int)
        keep = (cells >= 0) & (cells < len(self.times))
        df = df.loc[keep].assign(cell=cells[keep].to_numpy())
        df = df.sort_values("ts")
        wide = df.pivot_table(index="cell", columns=keys, values="value", aggfunc="last")
        wide = wide.reindex(range(len(self.times)))
        limit = int(pd.Timedelta(lookback) / self.step)
        if limit > 0:
            wide = wide.ffill(limit=limit)
        wide.index = self.times
        return wide

    def held(self, cond: pd.DataFrame, hold: timedelta) -> pd.Series:
        """Per series: the condition held at every evaluation in [at - hold, at]."""
        if cond.empty:
            return pd.Series([], dtype=bool)
        lo = self.at - pd.Timedelta(hold)
        if self.times[0] > lo:  # the window does not reach back far enough to know
            return pd.Series(False, index=cond.columns)
        window = cond.loc[cond.index >= lo]
        return window.fillna(False).astype(bool).all(axis=0)

    def last_values(
        self, df: pd.DataFrame, keys: list[str], lookback: timedelta
    ) -> dict[tuple[str, str], float]:
        """Per series: the instant value at ``at`` (last sample at most ``lookback`` old)."""
        recent = df[(df["ts"] >= self.at - pd.Timedelta(lookback)) & (df["ts"] <= self.at)]
        last = recent.sort_values("ts").groupby(keys, sort=True)["value"].last()
        return {(str(k[0]), str(k[1])): float(v) for k, v in last.items()}


def _utc(ts: datetime | pd.Timestamp) -> pd.Timestamp:
    """Aware UTC pandas timestamp."""
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def rule_names() -> Iterable[str]:
    """Return the short names of the static rules, in order."""
    return (r.name for r in RULES)
