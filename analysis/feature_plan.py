"""The feature plan: every per-GPU own-series feature declared once, as a reduction of one metric.

A GPU's own features (levels, variability, trends, counter rates, XIDs, data health) are each a
*reduction* of one exporter metric over the cycle's window (a mean, a maximum, a count ...) and a
*transform* of that number (``log1p`` of a rate per hour, a share of missing samples ...). The
plan declares them (:data:`FEATURES`, plus the reductions :func:`derive` combines: sustained
rates, XID precedence, the failure-grade flags); two evaluators compute the reductions:

- in memory over the tidy frames (:func:`analysis.reduce_frames.reduce_frames`): the simulator,
  the evaluation and the fit;
- in the TSDB as PromQL instant queries at ``at``, one per reduction for the whole fleet
  (``storage/promql_reduce.py``): the running bot, which then moves one number per GPU and
  reduction instead of the raw window.

Both evaluate the same definitions, on the same grid, and :func:`derive` turns either's table
into the same feature columns (``tests/test_reductions_promql.py`` checks they agree against a
real Prometheus and VictoriaMetrics).

The grid
    Every reduction reads a metric on the step grid ending at ``at``: at ``t = at - j*step``
    (``j = 0, 1, ...`` while ``j*step < span``) the last sample in ``(t - step, t]``; a step
    without a sample is absent. This is what the range queries of a fetch return (the frames),
    and what PromQL's ``last_over_time(m[step - 1ms])`` evaluated in a subquery ``[span - 1ms:
    step]`` returns (Prometheus and VictoriaMetrics both place subquery points on multiples of
    the step since the epoch, so ``at`` must be a multiple of the step for both to see the same
    grid: :func:`grid_time`). ``span`` is the window or its recent part.

The reductions (``kind``), on the present grid points of the span:
    ``mean``, ``max``, ``count``, ``last`` (the latest), ``std`` (population, as PromQL's
    ``stddev_over_time``), ``slope`` (least squares, per minute: PromQL's ``deriv`` x 60, with at
    least two points), ``last_time`` (unix seconds of the latest point), ``increase`` (a counter:
    ``max - min`` when the latest value is the maximum, which bridges scrape gaps; after a reset
    the sum of the positive steps between consecutive points), ``top_step`` (the largest positive
    step between consecutive points), ``step_sum`` (the sum of the positive steps between
    consecutive points, whatever the resets), ``new_codes`` (steps to a new non-zero XID code, of a set of
    codes or any).

Definitions that changed when the plan replaced the pandas code (each for the PromQL
equivalence): the spread (``*_std``) is the population standard deviation (it was the sample one:
x sqrt((n-1)/n), 1.7 % smaller at 30 points); a counter's increase within a window without a
reset is ``max - min`` (the same number as the sum of its steps), with a reset it counts only the
steps between consecutive grid points (a step across a missing scrape was counted before);
``top_step`` and a new XID code need two consecutive grid points; a GPU's last-seen time and gap
share are its temperature series' (they were any GPU metric's row).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from analysis.catalog import HARDWARE_XIDS, XID_HARDWARE_COUNT, XID_OTHER_COUNT
from analysis.stats import anscombe

__all__ = [
    "COUNTERS",
    "FEATURES",
    "GAUGES",
    "OWN_COLUMNS",
    "REMAP_FAILURE",
    "SUSTAINED",
    "XID",
    "Feature",
    "FeaturePlan",
    "Reduction",
    "derive",
    "grid_time",
]

GAUGES: dict[str, str] = {
    "DCGM_FI_DEV_GPU_TEMP": "temp",
    "DCGM_FI_DEV_MEMORY_TEMP": "mem_temp",
    "DCGM_FI_DEV_POWER_USAGE": "power",
    "DCGM_FI_DEV_SM_CLOCK": "sm_clock",
    "DCGM_FI_DEV_MEM_CLOCK": "mem_clock",
    "DCGM_FI_DEV_GPU_UTIL": "util",
    "DCGM_FI_DEV_FB_USED": "fb_used",
}
COUNTERS: dict[str, str] = {
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": "ecc_sbe",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": "ecc_dbe",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": "remap_corr",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": "remap_uncorr",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "pcie_replay",
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": "nvlink_crc",
    "DCGM_FI_DEV_THERMAL_VIOLATION": "thermal_viol",
    "DCGM_FI_DEV_POWER_VIOLATION": "power_viol",
}
SUSTAINED: tuple[str, ...] = ("ecc_sbe", "pcie_replay", "nvlink_crc")
REMAP_FAILURE = "DCGM_FI_DEV_ROW_REMAP_FAILURE"
XID = "DCGM_FI_DEV_XID_ERRORS"
TEMP = "DCGM_FI_DEV_GPU_TEMP"
POWER = "DCGM_FI_DEV_POWER_USAGE"
_METRIC_OF = {name: metric for metric, name in COUNTERS.items()}

Kind = Literal[
    "mean",
    "std",
    "slope",
    "last",
    "max",
    "count",
    "last_time",
    "increase",
    "top_step",
    "step_sum",
    "new_codes",
]
Span = Literal["recent", "window"]
Transform = Literal["level", "log1p_per_hour", "log1p_clip", "gap_share", "minutes_since"]


@dataclass(frozen=True)
class Reduction:
    """One number per GPU: ``kind`` of ``metric`` on the grid points of ``span``.

    ``codes`` (``new_codes`` only): the XID codes counted, named ``codes_name``; None counts any
    non-zero code.
    """

    metric: str
    kind: Kind
    span: Span = "window"
    codes: frozenset[int] | None = None
    codes_name: str = ""

    @property
    def name(self) -> str:
        """The column of a reduction table: ``<metric>:<kind>:<span>[:<codes_name>]``."""
        tail = f":{self.codes_name}" if self.codes_name else ""
        return f"{self.metric}:{self.kind}:{self.span}{tail}"


@dataclass(frozen=True)
class Feature:
    """A feature column: a ``transform`` of one reduction."""

    name: str
    reduction: Reduction
    transform: Transform = "level"


FEATURES: tuple[Feature, ...] = (
    *(Feature(name, Reduction(metric, "mean", "recent")) for metric, name in GAUGES.items()),
    Feature("temp_std", Reduction(TEMP, "std")),
    Feature("power_std", Reduction("DCGM_FI_DEV_POWER_USAGE", "std")),
    Feature("util_std", Reduction("DCGM_FI_DEV_GPU_UTIL", "std")),
    Feature("temp_slope", Reduction(TEMP, "slope")),
    Feature("mem_temp_slope", Reduction("DCGM_FI_DEV_MEMORY_TEMP", "slope")),
    *(
        Feature(f"{name}_rate", Reduction(metric, "increase"), "log1p_per_hour")
        for metric, name in COUNTERS.items()
    ),
    Feature(
        "remap_corr_level", Reduction("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "last"), "log1p_clip"
    ),
    Feature(
        "remap_uncorr_level",
        Reduction("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "last"),
        "log1p_clip",
    ),
    Feature("xid_last", Reduction(XID, "last")),
    Feature("gap_frac", Reduction(TEMP, "count"), "gap_share"),
    Feature("last_seen_min", Reduction(TEMP, "last_time"), "minutes_since"),
)

# The reductions :func:`derive` combines into further columns.
_TOP: dict[str, Reduction] = {name: Reduction(_METRIC_OF[name], "top_step") for name in SUSTAINED}
_STEPS: dict[str, Reduction] = {name: Reduction(_METRIC_OF[name], "step_sum") for name in SUSTAINED}
_XID_NEW_HW = Reduction(XID, "new_codes", codes=HARDWARE_XIDS, codes_name="hardware")
_XID_NEW_ANY = Reduction(XID, "new_codes", codes_name="any")
_XID_COUNTED_HW = Reduction(XID_HARDWARE_COUNT, "max")
_XID_COUNTED_OTHER = Reduction(XID_OTHER_COUNT, "max")
_REMAP_FAIL = Reduction(REMAP_FAILURE, "max")
_EXTRA: tuple[Reduction, ...] = (
    *_TOP.values(),
    *_STEPS.values(),
    _XID_NEW_HW,
    _XID_NEW_ANY,
    _XID_COUNTED_HW,
    _XID_COUNTED_OTHER,
    _REMAP_FAIL,
)

#: The own-feature columns :func:`derive` returns, in this order (the order the detectors see):
#: rates, then each sustained counter's sustained rate and excess count.
OWN_COLUMNS: tuple[str, ...] = (
    *GAUGES.values(),
    "temp_std",
    "power_std",
    "util_std",
    "temp_slope",
    "mem_temp_slope",
    *(f"{name}_rate" for name in COUNTERS.values()),
    *(col for name in SUSTAINED for col in (f"{name}_sustained", f"{name}_excess")),
    "remap_corr_level",
    "remap_uncorr_level",
    "xid_hw_events",
    "xid_app_events",
    "xid_last",
    "gap_frac",
    "last_seen_min",
    "fail_dbe",
    "fail_remap",
    "fail_xid_hw",
)


def grid_time(at: datetime, step: timedelta) -> datetime:
    """The last multiple of ``step`` since the epoch at or before ``at`` (the TSDB's grid)."""
    ms = round(step.total_seconds() * 1000)
    stamp = pd.Timestamp(at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    aligned = (stamp.value // 1_000_000 // ms) * ms
    return pd.Timestamp(aligned, unit="ms", tz="UTC").to_pydatetime()


@dataclass(frozen=True)
class FeaturePlan:
    """The plan with its lengths: the window, its recent part and the grid step.

    Attributes
    ----------
    window : timedelta
        The cycle's window (``analysis.features.DEFAULT_WINDOW``).
    recent : timedelta
        The final part of it whose mean is a GPU's level.
    step : timedelta
        The grid step (the fetch's step).
    """

    window: timedelta
    recent: timedelta
    step: timedelta
    left_out: frozenset[str] = frozenset()
    """Metrics whose reductions this plan leaves out (:meth:`leaving_out`): a cycle computes
    those of the metrics it reads raw anyway itself, and asks the TSDB for the rest."""

    @property
    def reductions(self) -> tuple[Reduction, ...]:
        """Every reduction the features need, each once, in declaration order (but those of the
        metrics ``left_out``)."""
        seen = dict.fromkeys([*(f.reduction for f in FEATURES), *_EXTRA])
        return tuple(r for r in seen if r.metric not in self.left_out)

    def leaving_out(self, metrics: Iterable[str]) -> FeaturePlan:
        """This plan without the reductions of ``metrics``."""
        return replace(self, left_out=self.left_out | frozenset(metrics))

    def of_only(self, metrics: Iterable[str]) -> FeaturePlan:
        """This plan with the reductions of ``metrics`` only."""
        return self.leaving_out(set(self.metrics) - set(metrics))

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics the reductions read, each once."""
        return tuple(dict.fromkeys(r.metric for r in self.reductions))

    def points(self, span: Span) -> int:
        """How many grid points a span holds: ``j*step < span`` for ``j = 0, 1, ...``."""
        length = self.recent if span == "recent" else self.window
        return max(1, -(-length // self.step))

    def length(self, span: Span) -> timedelta:
        """The duration of a span."""
        return self.recent if span == "recent" else self.window


def _transform(values: pd.Series, how: Transform, plan: FeaturePlan, at: datetime) -> pd.Series:
    """Apply one feature transform to a reduction (NaN where the GPU had no sample)."""
    if how == "level":
        return values
    if how == "log1p_per_hour":
        return pd.Series(np.log1p(values.fillna(0.0) / (plan.window / timedelta(hours=1))))
    if how == "log1p_clip":
        return pd.Series(np.log1p(values.clip(lower=0)))
    if how == "gap_share":
        expected = max(plan.window / plan.step, 1.0)
        return (1.0 - values.fillna(0.0) / expected).clip(0.0, 1.0)
    # minutes_since: unix seconds of the last point -> minutes before ``at``
    stamp = pd.Timestamp(at)
    now = (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).timestamp()
    return ((now - values) / 60.0).fillna(plan.window / timedelta(minutes=1))


def derive(table: pd.DataFrame, plan: FeaturePlan, at: datetime, index: pd.Index) -> pd.DataFrame:
    """Turn a reduction table (either evaluator's) into the own-feature columns, one row per GPU.

    Parameters
    ----------
    table : pd.DataFrame
        Index GPU key, one column per reduction name (:attr:`Reduction.name`); a missing column
        or row is NaN (no sample).
    plan : FeaturePlan
        The lengths the table was reduced with.
    at : datetime
        The time the table was reduced at.
    index : pd.Index
        The GPU keys wanted (every GPU of the graph; those without data get NaN and flags).

    Returns
    -------
    pd.DataFrame
        :data:`OWN_COLUMNS`, indexed by ``index``.
    """
    red = table.reindex(index=index, columns=[r.name for r in plan.reductions])
    out: dict[str, pd.Series] = {}
    for f in FEATURES:
        values = red[f.reduction.name].astype(float)
        out[f.name] = _transform(values, f.transform, plan, at).set_axis(index)
    hours = plan.window / timedelta(hours=1)
    for name in SUSTAINED:
        inc = red[_STEPS[name].name].fillna(0.0)
        top = red[_TOP[name].name].fillna(0.0)
        # The increase seen step by step without its largest single step: a one-off burst (a
        # retrained link) does not count, a steady climb does. A step across a missed scrape is
        # left out of both: it cannot tell a burst from a climb (one burst next to a scrape gap
        # read as a sustained PCIe replay rate, +14 sd, on a healthy fleet).
        trimmed = (inc - top).clip(lower=0.0)
        out[f"{name}_sustained"] = pd.Series(np.log1p(trimmed / hours), index=index)
        out[f"{name}_excess"] = anscombe(trimmed).set_axis(index)
    hw = red[_XID_NEW_HW.name].fillna(0.0)
    out["xid_hw_events"] = hw
    out["xid_app_events"] = (red[_XID_NEW_ANY.name].fillna(0.0) - hw).clip(lower=0.0)
    # Where the XID counter is exported it counts every code (the gauge keeps only the last one,
    # so a hardware XID followed by an application XID is lost): it takes precedence.
    counted_hw, counted_other = red[_XID_COUNTED_HW.name], red[_XID_COUNTED_OTHER.name]
    has = (counted_hw.notna() | counted_other.notna()).to_numpy()
    out["xid_hw_events"] = hw.where(~has, counted_hw.fillna(0.0))
    out["xid_app_events"] = out["xid_app_events"].where(~has, counted_other.fillna(0.0))
    dbe = red[Reduction("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "increase").name].fillna(0.0)
    uncorr = red[Reduction("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "increase").name]
    out["fail_dbe"] = (dbe > 0) | (uncorr.fillna(0.0) > 0)
    out["fail_remap"] = red[_REMAP_FAIL.name].fillna(0.0) > 0
    out["fail_xid_hw"] = out["xid_hw_events"] > 0
    frame = pd.DataFrame(out, index=index)
    return frame[list(OWN_COLUMNS)]
