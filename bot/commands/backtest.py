"""``gpu-risk backtest``: replay history through the bot's own loop and compare detectors.

Each detector is a :class:`~bot.pipeline.Pipeline` built by the composition root exactly as
``gpu-risk run`` builds it (scorer, incident tracker, explainer, lifecycle decisions), on its own
in-memory store. Each cycle at time ``t`` sees only data in ``[t - window, t]``; models that learn
are refitted on ``[t - fit_window, t]`` at the first cycle and every ``--refit-every`` (never on
data after the cycle). What is open after each cycle becomes an incident log
(:mod:`analysis.backtest`) scored against the faults file (:mod:`analysis.evaluation`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown

from bot.commands.common import (
    ConfigOption,
    PrometheusUrlOption,
    TopologyOption,
    UserError,
    guarded,
    parse_at,
    progress_bar,
    settings_from,
)

if TYPE_CHECKING:
    from analysis.evaluation import BacktestReport
    from analysis.types import Fault
    from bot.pipeline import Pipeline

logger = logging.getLogger(__name__)


class FormatChoice(StrEnum):
    """Output formats of ``backtest``."""

    text = "text"
    json = "json"


def parse_duration(text: str, option: str) -> timedelta:
    """Parse ``30s``, ``5m``, ``2h`` or ``1d``; UserError naming the option otherwise."""
    from bot.durations import DurationError
    from bot.durations import parse_duration as parse

    try:
        return parse(text, what="the value")
    except DurationError as err:
        raise UserError(f"{option}: {err}") from None


def register(app: typer.Typer) -> None:
    """Add the ``backtest`` command."""
    app.command("backtest")(guarded(backtest))


def backtest(
    *,
    prometheus_url: PrometheusUrlOption = None,
    topology: TopologyOption = None,
    faults: Annotated[
        Path, typer.Option("--faults", help="faults.json: the incident history to score against")
    ],
    start: Annotated[str, typer.Option("--start", help="First cycle, RFC 3339")],
    end: Annotated[str, typer.Option("--end", help="Last cycle, RFC 3339")],
    step: Annotated[str, typer.Option("--step", help="Time between cycles, e.g. 5m")] = "5m",
    output: Annotated[FormatChoice, typer.Option("--format", help="text or json")] = (
        FormatChoice.text
    ),
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Directory for summary.md, lead_times.png, backtest.json"),
    ] = None,
    detectors: Annotated[
        str | None,
        typer.Option("--detectors", help="Comma-separated scorers (default: graph,iforest,static)"),
    ] = None,
    refit_every: Annotated[
        str, typer.Option("--refit-every", help="Refit learning models this often")
    ] = "24h",
    explain: Annotated[
        bool,
        typer.Option(
            "--explain/--no-explain",
            help="Explain each new incident of the learning detectors (DoWhy; slower)",
        ),
    ] = True,
    config: Path | None = ConfigOption,
) -> None:
    """Replay history cycle by cycle and compare detectors: recall, lead time, false pages."""
    from analysis.backtest import figure_png, lead_time_figure, summary_markdown
    from analysis.scorer import COMPARED_SCORERS
    from bot.wiring import backtest_pipelines, build_source, load_topology_of
    from storage.datasets import DatasetError, load_faults

    settings = settings_from(config, prometheus_url=prometheus_url, topology=topology)
    t0, t1 = parse_at(start), parse_at(end)
    if t1 <= t0:
        raise UserError(f"--end ({end}) must be after --start ({start})")
    cycle_step = parse_duration(step, "--step")
    refit = parse_duration(refit_every, "--refit-every")
    try:
        truth = load_faults(faults)
    except DatasetError as exc:
        raise UserError(str(exc)) from None
    names = [n.strip() for n in detectors.split(",") if n.strip()] if detectors else None
    topo = load_topology_of(settings)
    pipelines = backtest_pipelines(
        settings,
        build_source(settings, topo),
        topo,
        detectors=names or list(COMPARED_SCORERS),
        explain=explain,
        horizon=t1,
    )
    err = Console(stderr=True)
    with progress_bar(err) as progress:
        task = progress.add_task("replaying cycles", total=None)

        def tick(done: int, total: int) -> None:
            """Advance the progress bar."""
            progress.update(task, completed=done, total=total)

        result = run_backtest(
            pipelines, truth, start=t0, end=t1, step=cycle_step, refit_every=refit, on_cycle=tick
        )
    data = result.as_dict()
    summary = summary_markdown(result)
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        (report / "summary.md").write_text(summary, encoding="utf-8")
        (report / "backtest.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        (report / "lead_times.png").write_bytes(figure_png(lead_time_figure(result)))
    if output is FormatChoice.json:
        typer.echo(json.dumps(data, indent=2))
        return
    Console().print(Markdown(summary))
    if report is not None:
        Console().print(f"report written to {report}/", highlight=False)


def relevant_faults(faults: Sequence[Fault], start: datetime, end: datetime) -> tuple[Fault, ...]:
    """Keep the faults a replay of ``[start, end]`` can judge (onset <= end, failure after start)."""
    return tuple(f for f in faults if f.onset <= end and (f.failure is None or f.failure > start))


def check_grid(step: timedelta, window: timedelta, data_step: timedelta) -> None:
    """Cycles and windows must sit on the data step grid (a cut of a chunk = a direct query)."""
    if step.total_seconds() % data_step.total_seconds() or (
        window.total_seconds() % data_step.total_seconds()
    ):
        raise UserError(
            f"--step ({step}) and the window ({window}) must be whole multiples of the data "
            f"step ({data_step}, GPU_RISK_STEP_SECONDS)"
        )


def run_backtest(
    pipelines: Mapping[str, Pipeline],
    faults: Sequence[Fault],
    *,
    start: datetime,
    end: datetime,
    step: timedelta,
    refit_every: timedelta = timedelta(hours=24),
    on_cycle: Callable[[int, int], None] | None = None,
) -> BacktestReport:
    """Replay ``[start, end]`` every ``step`` with each pipeline and score it against ``faults``.

    Each pipeline is the running bot's loop (``bot/pipeline.Pipeline``: scorer, incident tracker,
    explainer, lifecycle decisions) on its own in-memory store; learning ones are refitted on the
    history before the cycle at the first cycle and every ``refit_every``. Per cycle the incidents
    open after it are recorded; :func:`analysis.backtest.replay` scores those logs (strict and
    loose, with the topology's component ids deciding shared-component faults).
    """
    from analysis.backtest import replay
    from analysis.evaluation.matching import component_ids
    from bot.replay import Replay, ReplayError, cycle_times

    for pipeline in pipelines.values():
        check_grid(step, pipeline.window, pipeline.step)
    driver = Replay(pipelines, refit_every=refit_every, on_cycle=on_cycle)
    try:
        runs = driver.run(cycle_times(start, end, step))
    except ReplayError as exc:
        raise UserError(f"the replay stopped: {exc}") from None
    seen = set().union(*(p.last_seen for p in pipelines.values()))
    judged = relevant_faults(faults, start, end)
    # shared-component faults are those whose target is a component of the topology (any kind)
    shared = frozenset().union(*(component_ids(p.topology) for p in pipelines.values()))
    return replay(
        runs, judged, n_gpus=len(seen), start=start, end=end + step, shared_targets=shared
    )
