"""``gpu-risk evaluate``: detector and root-cause numbers on labelled multivariate data (SMD, CSV).

Fit on each machine's ``train``, score ``test``, flag rows above a high quantile of the training
scores (one setting for all machines, never tuned per machine and never from test labels), and
report point-wise F1, event-level F1, point-adjusted F1 (labelled as such), ROC-AUC and root-cause
Hit@100% / Hit@150% against the interpretation labels.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bot.commands.common import UserError, guarded, progress_bar


class LayoutChoice(StrEnum):
    """Dataset layouts ``evaluate`` reads."""

    smd = "smd"
    csv = "csv"


class FormatChoice(StrEnum):
    """Output formats."""

    text = "text"
    json = "json"


class DetectorChoice(StrEnum):
    """Detectors ``evaluate`` can run (``tail`` is the fixed setting; the rest for comparison)."""

    tail = "tail"
    iforest = "iforest"
    ecod = "ecod"
    copod = "copod"
    hbos = "hbos"


class SetChoice(StrEnum):
    """Which SMD machines to run: group 1 (dev), group 2 (report) or all."""

    dev = "dev"
    report = "report"
    all = "all"


#: Order the sets are printed in; ``other`` = machines outside SMD groups 1 and 2.
SET_ORDER: tuple[str, ...] = ("report", "dev", "other")
SET_TITLES = {
    "report": "report set (SMD group 2, never used to choose anything)",
    "dev": "development set (SMD group 1, the setting was chosen on it)",
    "other": "other machines",
}


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command."""
    app.command("evaluate")(guarded(evaluate))


def evaluate(
    *,
    path: Annotated[Path, typer.Option("--path", help="Dataset directory (SMD npz or CSV layout)")],
    layout: Annotated[
        LayoutChoice | None,
        typer.Option(
            "--layout",
            help="smd (DIR/machine-*.npz) or csv (DIR/<machine>/train.csv, test.csv); "
            "default: smd when DIR holds *.npz files, else csv",
        ),
    ] = None,
    output: Annotated[
        FormatChoice, typer.Option("--format", help="text or json")
    ] = FormatChoice.text,
    machine_set: Annotated[
        SetChoice,
        typer.Option(
            "--set", help="dev (machine-1-*), report (machine-2-*) or all (also other names)"
        ),
    ] = SetChoice.all,
    detector: Annotated[
        DetectorChoice,
        typer.Option("--detector", help="tail (the fixed setting) or a comparison detector"),
    ] = DetectorChoice.tail,
    quantile: Annotated[
        float | None,
        typer.Option(
            "--quantile",
            help="Threshold = this quantile of training scores, for both detector and baseline "
            "(default: the fixed setting's 0.995)",
        ),
    ] = None,
    baseline: Annotated[
        bool,
        typer.Option(
            "--baseline/--no-baseline",
            help="Also run a plain Isolation Forest with the same threshold rule",
        ),
    ] = True,
    max_train_rows: Annotated[
        int,
        typer.Option(
            "--max-train-rows", help="Seeded subsample of training rows for iforest/pyod (0 = all)"
        ),
    ] = 20_000,
    seed: Annotated[
        int, typer.Option("--seed", help="random_state of the detector and the subsample")
    ] = 0,
) -> None:
    """Evaluate the detector and root-cause ranking on labelled data; print per-machine tables."""
    from analysis.evaluation.smd import BASELINE_SETTING, FIXED_SETTING
    from storage.datasets import DatasetError, discover

    q = FIXED_SETTING.quantile if quantile is None else quantile
    if not 0.0 < q < 1.0:
        raise UserError(f"--quantile must be between 0 and 1 (exclusive), got {q}")
    ours = replace(
        FIXED_SETTING,
        detector=detector.value,
        quantile=q,
        max_train_rows=max_train_rows,
        random_state=seed,
    )
    base = (
        replace(BASELINE_SETTING, quantile=q, max_train_rows=max_train_rows, random_state=seed)
        if baseline
        else None
    )
    started = time.perf_counter()
    try:
        refs = discover(path, layout.value if layout else None)
    except DatasetError as exc:
        raise UserError(str(exc)) from None
    result = _run(refs, machine_set.value, ours, base)
    elapsed = time.perf_counter() - started
    if output is FormatChoice.json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_tables(result, elapsed)


def _describe(settings: Any) -> dict[str, Any]:
    """Return the JSON description of one setting."""
    if settings.detector == "tail":
        det = (
            f"tail guard: mean of the top {settings.top_k} per-feature -log10 p, "
            f"{settings.window}-minute trailing mean"
        )
    else:
        det = f"{settings.detector} on raw metrics ({settings.max_train_rows} training rows)"
    ranking = {
        "tail": "per-dimension peak -log10 p over the segment",
        "robust_z": "mean robust z-score vs training median/MAD over the segment",
    }[settings.ranking]
    return {
        "detector": settings.detector,
        "scoring": det,
        "threshold": f"quantile {settings.quantile} of training scores",
        "root_cause": ranking,
        "random_state": settings.random_state,
    }


def _run(refs: Any, wanted: str, ours: Any, base: Any) -> dict[str, Any]:
    """Evaluate every selected machine with ``ours`` (and ``base``); group them by set."""
    from analysis.evaluation.smd import (
        evaluate_series,
        interval_table,
        machine_set,
        mean_table,
    )
    from storage.datasets import DatasetError, load_machine

    selected = [r for r in refs if wanted == "all" or machine_set(r.name) == wanted]
    if not selected:
        names = ", ".join(r.name for r in refs[:5])
        raise UserError(f"no machine of the {wanted} set under --path (found: {names})")
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    base_rows: dict[str, dict[str, dict[str, Any]]] = {}
    err = Console(stderr=True)
    with progress_bar(err) as progress:
        task = progress.add_task("evaluating", total=len(selected))
        for ref in selected:
            progress.update(task, description=f"evaluating {ref.name}")
            try:
                m = load_machine(ref)
            except DatasetError as exc:
                raise UserError(str(exc)) from None
            group = machine_set(ref.name)
            rows.setdefault(group, {})[ref.name] = evaluate_series(
                m.train, m.test, m.labels, m.segments, ours
            )
            if base is not None:
                base_rows.setdefault(group, {})[ref.name] = evaluate_series(
                    m.train, m.test, m.labels, m.segments, base
                )
            progress.advance(task)
    sets: dict[str, Any] = {}
    for group in SET_ORDER:
        if group not in rows:
            continue
        entry: dict[str, Any] = {
            "machines": rows[group],
            "mean": mean_table(rows[group]),
            "interval_95": interval_table(rows[group]),
        }
        if base is not None:
            b = base_rows[group]
            entry["baseline"] = {
                "machines": b,
                "mean": mean_table(b),
                "interval_95": interval_table(b),
            }
        sets[group] = entry
    everything = {name: row for group in sets.values() for name, row in group["machines"].items()}
    return {
        "sets": sets,
        "machines": everything,
        "mean": mean_table(everything),
        "settings": _describe(ours),
        "baseline_settings": None if base is None else _describe(base),
        "bootstrap": "2,000 resamples of the machines, percentile 95 % interval of the mean",
    }


def _fmt(value: Any) -> str:
    """Format a metric for the text table ('-' when undefined)."""
    return "-" if value is None else f"{value:.3f}"


COLUMNS: tuple[tuple[str, str], ...] = (
    ("f1_point", "F1 point"),
    ("f1_event", "F1 event"),
    ("f1_point_adjusted", "F1 PA"),
    ("roc_auc", "ROC-AUC"),
    ("hit_at_100", "Hit@100%"),
    ("hit_at_150", "Hit@150%"),
)


def _table(title: str, block: dict[str, Any]) -> Table:
    """Return one per-machine table with its mean and 95 % interval rows."""
    table = Table(title=title)
    table.add_column("machine", no_wrap=True)
    for _, label in COLUMNS:
        table.add_column(label, justify="right")
    for name, row in block["machines"].items():
        table.add_row(name, *(_fmt(row.get(k)) for k, _ in COLUMNS))
    table.add_row("[bold]mean[/]", *(_fmt(block["mean"].get(k)) for k, _ in COLUMNS))
    cis = block["interval_95"]
    table.add_row(
        "95 % CI",
        *("-" if cis[k][0] is None else f"{cis[k][0]:.3f}–{cis[k][1]:.3f}" for k, _ in COLUMNS),
    )
    return table


def _print_tables(result: dict[str, Any], elapsed: float) -> None:
    """Print, per set (report first), the detector's table and the baseline's."""
    s = result["settings"]
    console = Console()
    for group, block in result["sets"].items():
        console.rule(SET_TITLES[group])
        console.print(_table(f"{s['scoring']}, threshold = {s['threshold']}", block))
        if "baseline" in block:
            b = result["baseline_settings"]
            console.print(
                _table(f"baseline: {b['scoring']}, threshold = {b['threshold']}", block["baseline"])
            )
    console.print(
        f"{len(result['machines'])} machines in {elapsed:.1f} s. One setting for all machines; "
        "thresholds from training scores only. F1 PA = point-adjusted F1: a whole labelled "
        "segment counts as found when one point of it is flagged (inflated; compare F1 point "
        "and F1 event). 95 % CI: bootstrap over machines.",
        highlight=False,
    )
