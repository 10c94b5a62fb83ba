"""``gpu-risk backtest``: replay history cycle by cycle and compare detectors against faults.

Each cycle at time ``t`` sees only data in ``[t - window, t]``; models that learn are fitted on
``[t - fit_window, t - window]`` at the first cycle and again every ``--refit-every`` (never on
data after the cycle). The detectors' per-cycle assessments become incident logs
(:mod:`analysis.backtest`) scored against the faults file (:mod:`analysis.evaluation`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from analysis.evaluation import BacktestReport
from analysis.scorer import Scorer
from analysis.types import Assessment, Fault, GpuRef, Topology
from bot.commands.common import ConfigOption, UserError, guarded, parse_at, settings_from
from storage.source import MetricsSource

if TYPE_CHECKING:
    import networkx as nx

logger = logging.getLogger(__name__)

#: The detectors a backtest compares by default, when this version can build them.
DEFAULT_DETECTORS: tuple[str, ...] = ("graph", "iforest", "static")
#: Cycles fetched from the metrics source in one range query per metric.
CHUNK = timedelta(hours=6)

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class FormatChoice(StrEnum):
    """Output formats of ``backtest``."""

    text = "text"
    json = "json"


def parse_duration(text: str, option: str) -> timedelta:
    """Parse ``30s``, ``5m``, ``2h`` or ``1d``; UserError naming the option otherwise."""
    m = _DURATION.match(text)
    if m is None or int(m.group(1)) == 0:
        raise UserError(f"{option} {text!r} is not a positive duration like 30s, 5m, 2h or 1d")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def register(app: typer.Typer) -> None:
    """Add the ``backtest`` command."""
    app.command("backtest")(guarded(backtest))


def backtest(
    *,
    prometheus_url: Annotated[
        str | None,
        typer.Option("--prometheus-url", help="PromQL base URL [GPU_RISK_PROMETHEUS_URL]"),
    ] = None,
    topology: Annotated[
        Path | None, typer.Option("--topology", help="topology.yaml [GPU_RISK_TOPOLOGY]")
    ] = None,
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
        typer.Option(
            "--detectors", help="Comma-separated scorers (default: graph,iforest,static if built)"
        ),
    ] = None,
    refit_every: Annotated[
        str, typer.Option("--refit-every", help="Refit learning models this often")
    ] = "24h",
    config: Path | None = ConfigOption,
) -> None:
    """Replay history cycle by cycle and compare detectors: recall, lead time, false pages."""
    from analysis.backtest import figure_png, lead_time_figure, summary_markdown
    from bot.commands.scan import source_from_settings
    from bot.scorers import available_detectors, make_scorer
    from storage.datasets import DatasetError, load_faults
    from storage.topology import load_topology

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
    if detectors:
        names = [n.strip() for n in detectors.split(",") if n.strip()]
    else:
        built = available_detectors()
        names = [n for n in DEFAULT_DETECTORS if n in built] or list(built)
    scorers = {name: make_scorer(name, settings) for name in names}
    topo = load_topology(settings.topology) if settings.topology is not None else None
    source = source_from_settings(settings, topo)
    err = Console(stderr=True)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("replaying cycles", total=None)

        def tick(done: int, total: int) -> None:
            """Advance the progress bar."""
            progress.update(task, completed=done, total=total)

        result = run_backtest(
            source,
            scorers,
            truth,
            topology=topo,
            start=t0,
            end=t1,
            step=cycle_step,
            data_step=timedelta(seconds=settings.step_seconds),
            window=timedelta(minutes=settings.window_minutes),
            fit_window=timedelta(hours=settings.fit_window_hours),
            refit_every=refit,
            on_cycle=tick,
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


def cycle_times(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Return ``start, start + step, ... <= end``."""
    n = int((end - start) / step)
    return [start + i * step for i in range(n + 1)]


def relevant_faults(faults: Sequence[Fault], start: datetime, end: datetime) -> tuple[Fault, ...]:
    """Keep the faults a replay of ``[start, end]`` can judge (onset <= end, failure after start)."""
    return tuple(f for f in faults if f.onset <= end and (f.failure is None or f.failure > start))


def run_backtest(
    source: MetricsSource,
    scorers: dict[str, Scorer],
    faults: Sequence[Fault],
    *,
    topology: Topology | None,
    start: datetime,
    end: datetime,
    step: timedelta,
    data_step: timedelta,
    window: timedelta,
    fit_window: timedelta,
    refit_every: timedelta = timedelta(hours=24),
    on_cycle: Callable[[int, int], None] | None = None,
) -> BacktestReport:
    """Replay ``[start, end]`` every ``step`` with each scorer and score it against ``faults``.

    Data comes in chunks of :data:`CHUNK` (one range query per metric per chunk) and each cycle
    is cut to ``[t - window, t]``; learning scorers are fitted on ``[t - fit_window, t - window]``.
    """
    from analysis.backtest import FrameSlicer, replay
    from analysis.graph import build_graph

    if step.total_seconds() % data_step.total_seconds() or (
        window.total_seconds() % data_step.total_seconds()
    ):
        raise UserError(
            f"--step ({step}) and the window ({window}) must be whole multiples of the data "
            f"step ({data_step}, GPU_RISK_STEP_SECONDS)"
        )
    topo = topology or Topology(racks=())
    longest = max([window, *(getattr(s, "min_window", timedelta(0)) for s in scorers.values())])
    longest = data_step * math.ceil(longest / data_step)  # stay on the data step grid
    times = cycle_times(start, end, step)
    runs: dict[str, list[Assessment]] = {name: [] for name in scorers}
    fitted_at: dict[str, datetime] = {}
    graphs: dict[tuple[GpuRef, ...], nx.DiGraph] = {}
    seen: set[GpuRef] = set()
    done = 0
    i = 0
    while i < len(times):
        chunk = [t for t in times[i:] if t < times[i] + CHUNK]
        slicer = FrameSlicer(source.fetch(chunk[0] - longest, chunk[-1], data_step))
        for at in chunk:
            frames = slicer.window(at - longest, at)
            gpus = frames.gpus
            seen.update(gpus)
            graph = graphs.get(gpus)
            if graph is None:
                graph = graphs.setdefault(gpus, build_graph(topo, gpus))
            for name, scorer in scorers.items():
                if getattr(scorer, "needs_history", True) and (
                    name not in fitted_at or at - fitted_at[name] >= refit_every
                ):
                    history = source.fetch(at - fit_window, at - window, data_step)
                    scorer.fit(history, graph)
                    fitted_at[name] = at
                runs[name].append(scorer.assess(frames, graph, at))
            done += 1
            if on_cycle is not None:
                on_cycle(done, len(times))
        i += len(chunk)
    judged = relevant_faults(faults, start, end)
    return replay(runs, judged, n_gpus=len(seen), start=start, end=end + step)
