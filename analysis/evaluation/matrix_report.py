"""The scenario matrix as Markdown: targets, detectors side by side, fault kinds, benign pages.

Pure string building over :func:`analysis.evaluation.matrix.aggregate`'s result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.evaluation.bootstrap import Interval
from analysis.evaluation.matrix import ScenarioResult, target_checks

_PCT = "{:.0%}"
_ROWS: tuple[tuple[str, str, str], ...] = (
    ("warned >= 1 h, strict", "warn_1h", _PCT),
    ("warned >= 1 h, strict, of precursors >= 1 h", "warn_1h_reachable", _PCT),
    ("warned >= 1 h, strict, of signals starting >= 1 h ahead", "warn_1h_visible", _PCT),
    ("best possible: signal starts >= 1 h ahead", "visible_1h", _PCT),
    ("recall strict", "recall_strict", _PCT),
    ("recall loose", "recall_loose", _PCT),
    ("median lead strict (min)", "lead_strict", "{:.0f}"),
    ("slow-burn warned >= 24 h", "slow_24h", _PCT),
    ("false / 1k GPU-days", "false_per_1k", "{:.1f}"),
    ("precision", "precision", _PCT),
    ("one incident per shared fault", "one_incident", _PCT),
    ("top factor = cause (strict)", "top1", _PCT),
    ("GPUs paged / affected", "gpus_paged_per_affected", "{:.2f}"),
    ("node faults escalated", "escalated", _PCT),
    ("false all-clear / warned", "false_all_clear", _PCT),
)


def _cell(value: Any, fmt: str) -> str:
    """Format an interval with its case count."""
    if not isinstance(value, Interval) or value.value is None:
        return "–"
    return f"{value.text(fmt)} (n={value.den:g})" if fmt == _PCT else value.text(fmt)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Return a Markdown table."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _targets(pooled: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """Return the targets table (the product, ``graph``)."""
    rows = []
    for check in target_checks(pooled):
        t = check["target"]
        fmt = "{:.1f}" if t.metric == "false_per_1k" else _PCT
        bound = f"{'>=' if t.at_least else '<='} {fmt.format(t.bound)}"
        met = {True: "yes", False: "no", None: "–"}[check["met"]]
        whole = {True: "yes", False: "no", None: "–"}[check["met_with_interval"]]
        rows.append([t.text, check["group"], _cell(check["measured"], fmt), bound, met, whole])
    return _table(
        ["target", "scenarios", "graph: measured [95 % CI]", "target", "met", "whole CI meets"],
        rows,
    )


def matrix_markdown(
    pooled: Mapping[str, Mapping[str, Mapping[str, Any]]],
    results: Sequence[ScenarioResult],
    *,
    seeds_label: str,
    run: tuple[float, int] | None,
) -> str:
    """Return the report: targets, per-group detector tables, per-kind recall, benign, scenarios.

    Parameters
    ----------
    pooled : Mapping
        :func:`analysis.evaluation.matrix.aggregate`'s result.
    results : Sequence[ScenarioResult]
        The scenarios, for the run's size and the per-scenario runtimes.
    seeds_label : str
        Which seeds ran (``dev``, ``report`` or the list).
    run : tuple[float, int] | None
        Wall-clock seconds of the whole run and the worker processes it used; None when the
        scenarios were pooled from stored replays (``gpu-risk eval --pool``).

    Returns
    -------
    str
        Markdown text.
    """
    faults = sum(len(r.report.faults) for r in results)
    gpu_days = sum(r.report.gpu_days for r in results)
    secs = sorted(r.seconds for r in results)
    median = secs[len(secs) // 2] if secs else 0.0
    lines = [
        f"Scenario matrix, seeds {seeds_label}: {len({r.seed for r in results})} scenarios, "
        f"{len(results)} replays, {gpu_days:,.0f} GPU-days, {faults} faults. "
        + (
            f"Wall time {run[0] / 60:.1f} min on {run[1]} process(es); "
            if run is not None
            else "Pooled from stored replays; "
        )
        + f"per replay median {median:.0f} s, max {secs[-1] if secs else 0.0:.0f} s.",
        "",
        "Intervals: 95 % bootstrap over scenarios; n = cases pooled. Strict: the warning's "
        "root cause names the fault's target (docs/evaluation.md).",
        "",
        *_targets(pooled),
    ]
    refits = [
        f"seed {r.seed} @ {r.cycle.total_seconds() / 60:g} min: {why}"
        for r in results
        for why in r.description.get("failed_refits", ()) or ()  # type: ignore[attr-defined]
    ]
    if refits:
        lines += ["", "Refits that failed (the model before each kept scanning, as in the bot):"]
        lines += ["", *(f"- {line}" for line in refits)]
    for group, detectors in pooled.items():
        names = list(detectors)
        lines += ["", f"### {group}", ""]
        rows = [
            [label, *(_cell(detectors[n].get(key), fmt) for n in names)]
            for label, key, fmt in _ROWS
        ]
        lines += _table(["metric", *names], rows)
        kinds = sorted({k for n in names for k in detectors[n]["kinds"]})
        if kinds:
            lines += ["", "Strict recall and median strict lead (min) by fault kind:", ""]
            krows = []
            for kind in kinds:
                cells = []
                for n in names:
                    cell = detectors[n]["kinds"].get(kind, {})
                    recall = _cell(cell.get("recall_strict"), _PCT)
                    lead = _cell(cell.get("lead_strict"), "{:.0f}")
                    cells.append(f"{recall}; lead {lead}")
                krows.append([kind, *cells])
            lines += _table(["kind", *names], krows)
        benign = sorted({k for n in names for k in detectors[n]["benign"]})
        if benign:
            lines += ["", "Pages per benign event, by kind:", ""]
            brows = [
                [kind, *(_cell(detectors[n]["benign"].get(kind), "{:.2f}") for n in names)]
                for kind in benign
            ]
            lines += _table(["benign kind", *names], brows)
    lines += ["", "Scenarios:", ""]
    srows = [
        [
            str(r.seed),
            f"{r.cycle.total_seconds() / 60:g} min",
            str(r.n_gpus),
            str(len(r.report.faults)),
            f"{r.report.gpu_days:.0f}",
            f"{r.seconds:.0f}",
        ]
        for r in sorted(results, key=lambda r: (r.healthy, r.cycle, r.seed))
    ]
    lines += _table(["seed", "cycle", "GPUs", "faults", "GPU-days", "seconds"], srows)
    return "\n".join(lines) + "\n"
