"""Backtest replay helper: per-cycle Assessments -> incident logs -> the issue 7 table.

Pure: the replay engine (``bot/``) feeds one :class:`~analysis.types.Assessment` per cycle and
detector, each computed only from data before its cycle; this module turns them into incident
logs and scores them with :mod:`analysis.evaluation`.

Incident log rules: an incident *opens* at the first cycle its ``dedup_key`` appears and *closes*
at the first later cycle where the key is absent; if the key comes back later, that is a new
incident. The record keeps the GPUs of its opening cycle (later growth does not move a warning
earlier for GPUs that joined afterwards: conservative lead times) and the factor names of the
first cycle that carried an explanation.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.evaluation import (
    BacktestReport,
    IncidentRecord,
    compare_detectors,
    gpu_days_of,
)
from analysis.frames import sort_by_time
from analysis.types import Assessment, Fault, FleetFrames, Incident, format_time


def _ns(ts: datetime) -> int:
    """Return an aware datetime as UTC epoch nanoseconds."""
    return int(pd.Timestamp(ts).tz_convert("UTC").as_unit("ns").value)


class FrameSlicer:
    """Cut per-cycle windows out of one long fetch, so each cycle sees only its own past.

    The frames are sorted by time once; :meth:`window` returns the rows with
    ``start <= ts <= end`` (what a range query over ``[start, end]`` on the same step grid
    returns) in O(log n) per frame.
    """

    def __init__(self, frames: FleetFrames) -> None:
        """Sort each frame by time and keep its timestamps as int64 nanoseconds."""
        self.frames = frames
        self._parts: dict[str, tuple[pd.DataFrame, npt.NDArray[np.int64]]] = {}
        for name in ("gpu", "node", "component", "up"):
            df = sort_by_time(getattr(frames, name))
            ns = pd.DatetimeIndex(df["ts"]).as_unit("ns").asi8 if len(df) else np.zeros(0, np.int64)
            self._parts[name] = (df, np.asarray(ns, dtype=np.int64))

    def window(self, start: datetime, end: datetime) -> FleetFrames:
        """Return the frames restricted to ``start <= ts <= end``."""
        lo, hi = _ns(start), _ns(end)
        cut: dict[str, pd.DataFrame] = {}
        for name, (df, ns) in self._parts.items():
            a = int(np.searchsorted(ns, lo, side="left"))
            b = int(np.searchsorted(ns, hi, side="right"))
            cut[name] = df.iloc[a:b].reset_index(drop=True)
        return FleetFrames(
            gpu=cut["gpu"],
            node=cut["node"],
            component=cut["component"],
            up=cut["up"],
            start=start,
            end=end,
            step=self.frames.step,
        )


@dataclass
class _Open:
    """An incident being tracked while its key stays present."""

    incident: Incident
    opened_at: datetime
    factors: tuple[str, ...]


def _factor_names(incident: Incident) -> tuple[str, ...]:
    """Return the incident's factor names in explanation order (empty without explanation)."""
    if incident.explanation is None:
        return ()
    return tuple(f.name for f in incident.explanation.factors)


def _record(tracked: _Open, closed_at: datetime | None) -> IncidentRecord:
    """Freeze a tracked incident into a log record."""
    inc = tracked.incident
    return IncidentRecord(
        id=f"{inc.dedup_key}@{format_time(tracked.opened_at)}",
        opened_at=tracked.opened_at,
        root_cause_id=inc.root_cause.id,
        root_cause_kind=inc.root_cause.kind,
        gpus=tuple(g.key for g in inc.gpus),
        factors=tracked.factors,
        closed_at=closed_at,
    )


def incident_log(assessments: Iterable[Assessment]) -> tuple[IncidentRecord, ...]:
    """Turn one detector's per-cycle assessments into its incident log.

    Parameters
    ----------
    assessments : Iterable[Assessment]
        One per cycle (any order; sorted by ``at`` here).

    Returns
    -------
    tuple[IncidentRecord, ...]
        Incidents ordered by opening time; those still open after the last cycle have
        ``closed_at=None``.
    """
    tracked: dict[str, _Open] = {}
    done: list[IncidentRecord] = []
    for cycle in sorted(assessments, key=lambda a: a.at):
        present: dict[str, Incident] = {}
        for inc in cycle.incidents:
            present.setdefault(inc.dedup_key, inc)
        for key in [k for k in tracked if k not in present]:
            done.append(_record(tracked.pop(key), cycle.at))
        for key, inc in present.items():
            if key not in tracked:
                tracked[key] = _Open(inc, cycle.at, _factor_names(inc))
            elif not tracked[key].factors:
                tracked[key].factors = _factor_names(inc)
    done.extend(_record(t, None) for t in tracked.values())
    return tuple(sorted(done, key=lambda r: (r.opened_at, r.id)))


def fleet_size(assessments: Mapping[str, Sequence[Assessment]]) -> int:
    """Return how many distinct GPUs any detector scored in any cycle."""
    return len({s.key for cycles in assessments.values() for a in cycles for s in a.scores})


def replay(
    assessments: Mapping[str, Sequence[Assessment]],
    faults: Sequence[Fault],
    *,
    n_gpus: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    **options: Any,
) -> BacktestReport:
    """Score several detectors' per-cycle assessments against ground-truth faults.

    Parameters
    ----------
    assessments : Mapping[str, Sequence[Assessment]]
        Detector name (``graph``, ``iforest``, ``static``) -> its assessments, one per cycle.
    faults : Sequence[Fault]
        Ground truth.
    n_gpus : int, optional
        Fleet size for the false-incident rate (default: distinct GPUs scored).
    start, end : datetime, optional
        The replayed period (default: first cycle to last cycle plus one median step).
    **options
        Passed to :func:`analysis.evaluation.score_detector` (``slack``, ``grace``, ...).

    Returns
    -------
    BacktestReport
        ``as_dict()`` gives ``{"detectors": {...}, "faults": [...]}`` as issue 7 asks.
    """
    times = sorted({a.at for cycles in assessments.values() for a in cycles})
    if start is None or end is None:
        if not times:
            raise ValueError("no cycles to replay: give start and end, or some assessments")
        step = _median_step(times)
        start = start or times[0]
        end = end or times[-1] + step
    gpus = n_gpus if n_gpus is not None else fleet_size(assessments)
    logs = {name: incident_log(cycles) for name, cycles in assessments.items()}
    return compare_detectors(faults, logs, gpu_days_of(gpus, start, end), **options)


def _median_step(times: Sequence[datetime]) -> timedelta:
    """Return the median gap between consecutive cycle times (0 for fewer than two)."""
    if len(times) < 2:
        return timedelta(0)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    return timedelta(seconds=float(np.median(gaps)))


def _cell(value: float | None, fmt: str = "{:.2f}") -> str:
    """Format a table cell ('–' when undefined)."""
    return "–" if value is None else fmt.format(value)


def _count(num: int, den: int) -> str:
    """Format ``num/den`` ('–' when there is nothing to count)."""
    return f"{num}/{den}" if den else "–"


def _kind_table(
    title: str,
    head: str,
    kinds: Sequence[str],
    names: Sequence[str],
    cell: Callable[[str, str], str],
) -> list[str]:
    """A Markdown table: one row per kind, one column per detector (none without both)."""
    if not kinds or not names:
        return []
    lines = [
        "",
        title,
        "",
        f"| {head} | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(cell(name, kind) for name in names) + " |")
    return lines


def summary_markdown(report: BacktestReport) -> str:
    """Return a short Markdown summary: warnings and pages per detector, recall by fault kind.

    Parameters
    ----------
    report : BacktestReport
        The scored backtest.

    Returns
    -------
    str
        Markdown text: warnings (loose and strict side by side) and false pages, pages per
        fault, recall by fault kind (strict / loose), pages during benign events when there
        were any, and a legend.
    """
    lines = [
        f"Backtest over {report.gpu_days:.1f} GPU-days, {len(report.faults)} faults.",
        "",
        "| detector | recall loose | precision | recall strict | median lead strict (min) "
        "| median lead loose (min) | false / 1k GPU-days | root cause | top-1 | top-3 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in report.detectors.items():
        lines.append(
            f"| {name} | {_cell(s.recall)} ({s.n_warned}/{s.n_faults}) | {_cell(s.precision)} "
            f"| {_cell(s.recall_strict)} ({s.n_warned_strict}/{s.n_faults}) "
            f"| {_cell(s.median_lead_minutes_strict, '{:.0f}')} "
            f"| {_cell(s.median_lead_minutes, '{:.0f}')} "
            f"| {_cell(s.false_incidents_per_1k_gpu_days, '{:.1f}')} "
            f"| {_cell(s.root_cause_accuracy)} | {_cell(s.explanation_top1)} "
            f"| {_cell(s.explanation_top3)} |"
        )
    lines += [
        "",
        "| detector | one incident per shared fault | GPUs paged / affected "
        "| node faults escalated | false all-clear |",
        "|---|---|---|---|---|",
    ]
    for name, s in report.detectors.items():
        lines.append(
            f"| {name} | {_count(s.n_one_incident, s.n_component_faults)} "
            f"| {s.gpus_paged}/{s.gpus_affected} "
            f"| {_count(s.n_escalated, s.n_node_faults)} | {s.n_false_all_clear} |"
        )
    names = list(report.detectors)

    def outcome_cell(name: str, kind: str) -> str:
        """``strict / loose of all`` faults of ``kind`` warned by ``name``."""
        outs = [o for o in report.detectors[name].outcomes if o.kind == kind]
        strict = sum(o.warned_strict for o in outs)
        return f"{strict} / {sum(o.warned for o in outs)} of {len(outs)}"

    def benign_cell(name: str, kind: str) -> str:
        """``pages (events paged / events)`` of benign ``kind`` for ``name``."""
        b = report.detectors[name].benign.get(kind)
        return f"{b.pages} ({b.events_paged}/{b.events})" if b else "–"

    kinds = sorted({f.kind for f in report.faults})
    lines += _kind_table(
        "Faults warned before failure, by kind (strict / loose):",
        "kind",
        kinds,
        names,
        outcome_cell,
    )
    benign = sorted({k for s in report.detectors.values() for k in s.benign})
    lines += _kind_table(
        "Pages during benign events (pages, events paged / events):",
        "benign kind",
        benign,
        names,
        benign_cell,
    )
    lines += [
        "",
        "strict = the warning's root cause names the fault's target (component; node or its "
        "GPU; the GPU); loose = any incident sharing a GPU with the fault; lead = failure - "
        "first warning; root cause = shared-component faults whose first warning named the "
        "component; one incident = exactly one incident for a shared-component fault, naming "
        "it; escalated = node faults warned through a rack/component incident; false all-clear "
        "= a warning resolved before the repair; top-1/top-3 = expected cause among the first "
        "1/3 explanation factors.",
    ]
    return "\n".join(lines) + "\n"


def lead_time_figure(report: BacktestReport) -> Figure:
    """Return a Figure of lead times (minutes) by fault kind, one marker colour per detector.

    Parameters
    ----------
    report : BacktestReport
        The scored backtest.

    Returns
    -------
    matplotlib.figure.Figure
        Points are individual faults, bars the medians; missed faults are counted in the labels.
    """
    kinds = sorted({f.kind for f in report.faults})
    names = list(report.detectors)
    fig = Figure(figsize=(max(6.0, 1.6 * len(kinds) + 2), 4.0 + 0.15 * len(names)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(names), 1)
    colours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]
    for j, name in enumerate(names):
        outs = report.detectors[name].outcomes
        for i, kind in enumerate(kinds):
            leads = [o.lead_minutes for o in outs if o.kind == kind and o.lead_minutes is not None]
            x = i - 0.4 + width * (j + 0.5)
            if leads:
                jitter = np.linspace(-width / 4, width / 4, len(leads)) if len(leads) > 1 else [0.0]
                ax.scatter(
                    [x + d for d in jitter], leads, s=14, color=colours[j % len(colours)], alpha=0.8
                )
                ax.hlines(
                    float(np.median(leads)),
                    x - width / 2.5,
                    x + width / 2.5,
                    color=colours[j % len(colours)],
                    linewidth=2,
                )
        ax.scatter([], [], color=colours[j % len(colours)], label=name)
    labels = []
    for kind in kinds:
        total = sum(1 for f in report.faults if f.kind == kind)
        missed = [
            f"{name}: {sum(1 for o in report.detectors[name].outcomes if o.kind == kind and not o.warned)} missed"
            for name in names
        ]
        labels.append("\n".join([f"{kind} (n={total})", *missed]))
    ax.set_xticks(range(len(kinds)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("lead time before failure (minutes)")
    ax.set_title("Warning lead time by fault kind and detector (bar = median)")
    ax.axhline(0, color="grey", linewidth=0.5)
    if names:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlim(-0.6, len(kinds) - 0.4)
    ax.margins(y=0.15)
    fig.tight_layout()
    return fig


def figure_png(fig: Figure) -> bytes:
    """Render a Figure to PNG bytes (Agg canvas, no pyplot)."""
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()
