"""``gpu-risk evaluate``: detector and root-cause numbers on labelled multivariate data (SMD, CSV).

Fit on each machine's ``train``, score ``test``, flag rows above a high quantile of the training
scores (one setting for all machines, never tuned per machine and never from test labels), and
report point-wise F1, event-level F1, point-adjusted F1 (labelled as such), ROC-AUC and root-cause
Hit@100% / Hit@150% against the interpretation labels.
"""

from __future__ import annotations

import json
import time
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
    """Detectors ``evaluate`` can run."""

    iforest = "iforest"
    ecod = "ecod"
    copod = "copod"
    hbos = "hbos"


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
    detector: Annotated[
        DetectorChoice, typer.Option("--detector", help="Detector fitted on each machine's train")
    ] = DetectorChoice.iforest,
    quantile: Annotated[
        float,
        typer.Option(
            "--quantile", help="Threshold = this quantile of training scores (all machines)"
        ),
    ] = 0.99,
    max_train_rows: Annotated[
        int, typer.Option("--max-train-rows", help="Seeded subsample of training rows (0 = all)")
    ] = 20_000,
    seed: Annotated[
        int, typer.Option("--seed", help="random_state of the detector and the subsample")
    ] = 0,
) -> None:
    """Evaluate the detector and root-cause ranking on labelled data; print per-machine table."""
    from analysis.evaluation import EvaluationSettings, evaluate_series, mean_table
    from storage.datasets import DatasetError, discover, load_machine

    if not 0.0 < quantile < 1.0:
        raise UserError(f"--quantile must be between 0 and 1 (exclusive), got {quantile}")
    settings = EvaluationSettings(
        detector=detector.value,
        quantile=quantile,
        max_train_rows=max_train_rows,
        random_state=seed,
    )
    started = time.perf_counter()
    try:
        refs = discover(path, layout.value if layout else None)
    except DatasetError as exc:
        raise UserError(str(exc)) from None
    machines: dict[str, dict[str, Any]] = {}
    err = Console(stderr=True)
    with progress_bar(err) as progress:
        task = progress.add_task("evaluating", total=len(refs))
        for ref in refs:
            progress.update(task, description=f"evaluating {ref.name}")
            try:
                machine = load_machine(ref)
            except DatasetError as exc:
                raise UserError(str(exc)) from None
            machines[ref.name] = evaluate_series(
                machine.train, machine.test, machine.labels, machine.segments, settings
            )
            progress.advance(task)
    elapsed = time.perf_counter() - started
    result: dict[str, Any] = {
        "machines": machines,
        "mean": mean_table(machines),
        "settings": {
            "detector": settings.detector,
            "threshold": f"quantile {settings.quantile} of training scores",
            "max_train_rows": settings.max_train_rows,
            "random_state": settings.random_state,
            "root_cause": "robust z-score vs training median/MAD, mean over segment",
        },
    }
    if output is FormatChoice.json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_table(result, elapsed)


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


def _print_table(result: dict[str, Any], elapsed: float) -> None:
    """Print the per-machine table and the mean row."""
    s = result["settings"]
    table = Table(
        title=f"{s['detector']}, threshold = {s['threshold']} (one setting for all machines)",
    )
    table.add_column("machine", no_wrap=True)
    for _, label in COLUMNS:
        table.add_column(label, justify="right")
    for name, row in result["machines"].items():
        table.add_row(name, *(_fmt(row.get(k)) for k, _ in COLUMNS))
    table.add_row("[bold]mean[/]", *(_fmt(result["mean"].get(k)) for k, _ in COLUMNS))
    console = Console()
    console.print(table)
    console.print(
        f"{len(result['machines'])} machines in {elapsed:.1f} s. F1 PA = point-adjusted F1: a "
        "whole labelled segment counts as found when one point of it is flagged (inflated; "
        "compare F1 point and F1 event).",
        highlight=False,
    )
