"""The randomized scenario matrix: pool many scenarios' backtests, with bootstrap intervals.

Each scenario (one seed) is replayed by ``gpu-risk eval`` and scored with the strict rules of
:mod:`analysis.evaluation.backtest`; :func:`aggregate` pools the scenarios per replay cadence and
detector into rates with 95 % intervals (:mod:`analysis.evaluation.bootstrap`, scenarios are the
resampling unit) and checks them against :data:`TARGETS`. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from analysis.evaluation.bootstrap import Interval, bootstrap_median, bootstrap_ratio
from analysis.evaluation.protocol import BOOTSTRAP_RESAMPLES
from analysis.evaluation.records import BacktestReport, DetectorScore, FaultOutcome

#: A fault whose precursor lasts at least this long is a *slow-burn* fault.
SLOW_BURN = timedelta(hours=24)


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario's backtest: its seed, cadence, fleet size, runtime and scored report."""

    seed: int
    healthy: bool
    cycle: timedelta
    n_gpus: int
    seconds: float
    report: BacktestReport
    description: Mapping[str, object] = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, bool, float]:
        """Return what names the scenario among runs: seed, healthy, cadence in minutes."""
        return (self.seed, self.healthy, self.cycle.total_seconds() / 60.0)

    def as_dict(self) -> dict[str, Any]:
        """Return the scenario's JSON: meta data and the backtest table."""
        return {
            "seed": self.seed,
            "healthy": self.healthy,
            "cycle_minutes": self.cycle.total_seconds() / 60.0,
            "gpus": self.n_gpus,
            "seconds": round(self.seconds, 1),
            "description": dict(self.description),
            "backtest": self.report.as_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScenarioResult:
        """The scenario :meth:`as_dict` wrote (one entry of a stored ``eval.json``)."""
        return cls(
            seed=int(d["seed"]),
            healthy=bool(d["healthy"]),
            cycle=timedelta(minutes=float(d["cycle_minutes"])),
            n_gpus=int(d["gpus"]),
            seconds=float(d["seconds"]),
            report=BacktestReport.from_dict(d["backtest"]),
            description=dict(d.get("description", {})),
        )


@dataclass(frozen=True)
class Target:
    """A claim the README makes and the measured metric that checks it."""

    key: str
    text: str
    metric: str
    bound: float
    at_least: bool = True
    healthy: bool = False

    def met(self, value: float | None) -> bool | None:
        """Return whether a measured value meets the target (None when unmeasured)."""
        if value is None:
            return None
        return value >= self.bound if self.at_least else value <= self.bound


#: Targets printed next to the measured values (issue 11).
TARGETS: tuple[Target, ...] = (
    Target("warn_1h", "faults warned >= 1 h before failure, target named (strict)", "warn_1h", 0.9),
    Target(
        "slow_burn_24h",
        "slow-burn faults (precursor >= 24 h) warned >= 24 h ahead",
        "slow_24h",
        0.8,
    ),
    Target(
        "false_rate",
        "false incidents per 1,000 GPU-days on healthy fleets",
        "false_per_1k",
        1.0,
        at_least=False,
        healthy=True,
    ),
    Target(
        "one_incident",
        "shared-component faults -> exactly one incident naming it",
        "one_incident",
        0.9,
    ),
    Target("top_factor", "explanation top factor = injected cause (strict warnings)", "top1", 0.9),
)

_Counter = Callable[[DetectorScore], tuple[float, float]]


def _lead_at_least(minutes: float) -> Callable[[FaultOutcome], bool]:
    """Return a predicate: strictly warned at least ``minutes`` before the failure."""
    return lambda o: o.lead_minutes_strict is not None and o.lead_minutes_strict >= minutes


def _count(
    score: DetectorScore, pick: Callable[[FaultOutcome], bool], hit: Callable[[FaultOutcome], bool]
) -> tuple[float, float]:
    """Return (hits, cases) over the outcomes ``pick`` selects."""
    cases = [o for o in score.outcomes if pick(o)]
    return float(sum(hit(o) for o in cases)), float(len(cases))


def _with_failure(o: FaultOutcome) -> bool:
    """Return whether the fault has a failure (lead times are defined)."""
    return o.precursor_minutes is not None


def _reachable(o: FaultOutcome) -> bool:
    """Return whether the fault's precursor lasts an hour or more: a warning an hour before the
    failure is possible at all (a 40-minute precursor cannot be warned of 60 minutes ahead)."""
    return o.precursor_minutes is not None and o.precursor_minutes >= 60.0


def _visible(o: FaultOutcome) -> bool:
    """Return whether the fault's signal starts an hour or more before its failure: a step is
    quiet until its jump, so a 3-hour precursor that jumps 40 minutes before the failure cannot
    be warned of an hour ahead by anything that reads the metrics."""
    return o.visible_minutes is not None and o.visible_minutes >= 60.0


def _slow(o: FaultOutcome) -> bool:
    """Return whether the fault is slow-burn."""
    return o.precursor_minutes is not None and o.precursor_minutes >= SLOW_BURN.total_seconds() / 60


#: Rate metrics: name -> (numerator, denominator) of one scenario's detector score.
RATES: Mapping[str, _Counter] = {
    "warn_1h": lambda s: _count(s, _with_failure, _lead_at_least(60.0)),
    "warn_1h_reachable": lambda s: _count(s, _reachable, _lead_at_least(60.0)),
    "warn_1h_visible": lambda s: _count(s, _visible, _lead_at_least(60.0)),
    "visible_1h": lambda s: _count(s, _with_failure, _visible),
    "recall_strict": lambda s: (float(s.n_warned_strict), float(s.n_faults)),
    "recall_loose": lambda s: (float(s.n_warned), float(s.n_faults)),
    "slow_24h": lambda s: _count(s, _slow, _lead_at_least(SLOW_BURN.total_seconds() / 60)),
    "precision": lambda s: (float(s.n_true_incidents), float(s.n_incidents)),
    "one_incident": lambda s: (float(s.n_one_incident), float(s.n_component_faults)),
    "top1": lambda s: _count(s, lambda o: o.top1_strict is not None, lambda o: bool(o.top1_strict)),
    "escalated": lambda s: (float(s.n_escalated), float(s.n_node_faults)),
    "false_all_clear": lambda s: (float(s.n_false_all_clear), float(s.n_warned)),
    "gpus_paged_per_affected": lambda s: (float(s.gpus_paged), float(s.gpus_affected)),
}


def _kind_rows(
    scores: Sequence[DetectorScore], kind: str, resamples: int, seed: int
) -> dict[str, Interval]:
    """Pool one fault kind: strict recall and the median strict lead time, with intervals."""
    warned, cases = [], []
    leads: list[list[float]] = []
    for s in scores:
        outs = [o for o in s.outcomes if o.kind == kind]
        warned.append(float(sum(o.warned_strict for o in outs)))
        cases.append(float(len(outs)))
        leads.append([o.lead_minutes_strict for o in outs if o.lead_minutes_strict is not None])
    return {
        "recall_strict": bootstrap_ratio(warned, cases, resamples=resamples, seed=seed),
        "lead_strict": bootstrap_median(leads, resamples=resamples, seed=seed),
    }


def _detector_rows(
    results: Sequence[ScenarioResult], name: str, resamples: int, seed: int
) -> dict[str, Any]:
    """Pool one detector over scenarios: every rate, the false rate, leads, kinds, benign."""
    scores = [r.report.detectors[name] for r in results if name in r.report.detectors]
    out: dict[str, Any] = {"scenarios": len(scores)}
    for key, counter in RATES.items():
        pairs = [counter(s) for s in scores]
        out[key] = bootstrap_ratio(
            [p[0] for p in pairs], [p[1] for p in pairs], resamples=resamples, seed=seed
        )
    out["false_per_1k"] = bootstrap_ratio(
        [float(s.n_false_incidents) for s in scores],
        [r.report.gpu_days for r in results if name in r.report.detectors],
        scale=1000.0,
        resamples=resamples,
        seed=seed,
    )
    out["lead_strict"] = bootstrap_median(
        [list(s.lead_minutes_strict) for s in scores], resamples=resamples, seed=seed
    )
    kinds = sorted({o.kind for s in scores for o in s.outcomes})
    out["kinds"] = {kind: _kind_rows(scores, kind, resamples, seed) for kind in kinds}
    benign = sorted({k for s in scores for k in s.benign})
    out["benign"] = {
        kind: bootstrap_ratio(
            [float(s.benign[kind].pages) if kind in s.benign else 0.0 for s in scores],
            [float(s.benign[kind].events) if kind in s.benign else 0.0 for s in scores],
            resamples=resamples,
            seed=seed,
        )
        for kind in benign
    }
    return out


def _group_key(result: ScenarioResult) -> str:
    """Return the group a scenario pools into: healthy or faulty, and the replay cadence."""
    minutes = result.cycle.total_seconds() / 60.0
    return f"{'healthy' if result.healthy else 'faults'} @ {minutes:g} min"


def aggregate(
    results: Sequence[ScenarioResult],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Pool scenarios per group (healthy/faults x cadence) and detector, with intervals.

    Parameters
    ----------
    results : Sequence[ScenarioResult]
        One entry per scenario and cadence.
    resamples : int
        Bootstrap resamples (:data:`~analysis.evaluation.protocol.BOOTSTRAP_RESAMPLES`).
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict
        ``{group: {detector: {metric: Interval | {...}}}}``; metrics are the keys of
        :data:`RATES`, ``false_per_1k``, ``lead_strict`` (median minutes), ``kinds`` (per fault
        kind: strict recall and median strict lead) and ``benign`` (pages per event, per kind).
    """
    groups: dict[str, list[ScenarioResult]] = {}
    for r in results:
        groups.setdefault(_group_key(r), []).append(r)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key, members in sorted(groups.items()):
        names = list(dict.fromkeys(n for r in members for n in r.report.detectors))
        out[key] = {name: _detector_rows(members, name, resamples, seed) for name in names}
    return out


def target_checks(
    pooled: Mapping[str, Mapping[str, Mapping[str, Any]]], detector: str = "graph"
) -> list[dict[str, Any]]:
    """Return each target against the measured value of ``detector`` in every group it applies to.

    Parameters
    ----------
    pooled : Mapping
        What :func:`aggregate` returned.
    detector : str
        The detector the targets are claimed for (the product, ``graph``).

    Returns
    -------
    list[dict]
        One row per target and group: ``target``, ``group``, ``bound``, ``measured``
        (:class:`Interval`), ``met`` (value meets the bound) and ``met_with_interval`` (the whole
        interval does). Targets whose group is missing from this run are listed as unmeasured.
    """
    rows: list[dict[str, Any]] = []
    for target in TARGETS:
        groups = [g for g in pooled if g.startswith("healthy") == target.healthy]
        for group in groups or ["(not in this run)"]:
            cell = pooled.get(group, {}).get(detector, {}).get(target.metric)
            measured = cell if isinstance(cell, Interval) else Interval(None, None, None)
            edge = measured.low if target.at_least else measured.high
            rows.append(
                {
                    "target": target,
                    "group": group,
                    "measured": measured,
                    "met": target.met(measured.value),
                    "met_with_interval": target.met(edge),
                }
            )
    return rows


def pooled_json(pooled: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Return :func:`aggregate`'s result as JSON-ready dicts (intervals as dicts)."""

    def conv(value: Any) -> Any:
        """Convert intervals and nested mappings."""
        if isinstance(value, Interval):
            return value.as_dict()
        if isinstance(value, Mapping):
            return {k: conv(v) for k, v in value.items()}
        return value

    return {k: conv(v) for k, v in pooled.items()}
