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
from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown

from analysis.evaluation import BacktestReport
from analysis.scorer import Scorer
from analysis.types import Assessment, Fault, GpuRef, Incident, Topology
from bot.commands.common import (
    ConfigOption,
    UserError,
    guarded,
    parse_at,
    progress_bar,
    settings_from,
)
from storage.source import MetricsSource

if TYPE_CHECKING:
    import networkx as nx

    from analysis.explain import Explainer

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
    with progress_bar(err) as progress:
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
            open_after=settings.open_after,
            close_after=settings.close_after,
            make_explainer=_explainer_factory(settings.random_state) if explain else None,
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


def _explainer_factory(random_state: int) -> Callable[[], Explainer]:
    """Return a factory of the product's explainer (DoWhy imported only when it is called)."""

    def make() -> Explainer:
        """Build a fresh explainer."""
        from analysis.explain import Explainer

        return Explainer(random_state=random_state)

    return make


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
    open_after: int = 1,
    close_after: int = 1,
    make_explainer: Callable[[], Explainer] | None = None,
    on_cycle: Callable[[int, int], None] | None = None,
) -> BacktestReport:
    """Replay ``[start, end]`` every ``step`` with each scorer and score it against ``faults``.

    Data comes in chunks of :data:`CHUNK` (one range query per metric per chunk) and each cycle
    is cut to ``[t - window, t]`` (or the scorer's longer ``min_window``). Learning scorers
    (``needs_history``) and the explainer are fitted on ``[t - fit_window, t - window]`` at the
    first cycle and every ``refit_every``; their assessments pass through the product's
    :class:`~analysis.scoring.Hysteresis` (``open_after`` / ``close_after`` cycles) and each
    newly opened incident is explained once. The static rules page as they fire.
    """
    from analysis.backtest import FrameSlicer, replay
    from analysis.graph import build_graph
    from analysis.scoring import Hysteresis

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
    learning = {n for n, s in scorers.items() if getattr(s, "needs_history", True)}
    gates = {n: Hysteresis(open_after=open_after, close_after=close_after) for n in learning}
    explained: dict[str, dict[str, Incident]] = {n: {} for n in learning}
    explainer: Explainer | None = None
    times = cycle_times(start, end, step)
    runs: dict[str, list[Assessment]] = {name: [] for name in scorers}
    last_fit: datetime | None = None
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
            if learning and (last_fit is None or at - last_fit >= refit_every):
                history = source.fetch(at - fit_window, at - window, data_step)
                for name in learning:
                    scorers[name].fit(history, graph)
                if make_explainer is not None:
                    explainer = make_explainer().fit(history, graph)
                last_fit = at
            for name, scorer in scorers.items():
                assessment = scorer.assess(frames, graph, at)
                if name in learning:
                    opened = gates[name].update(assessment)
                    cache = explained[name]
                    for key in [k for k in cache if k not in {o.dedup_key for o in opened}]:
                        del cache[key]
                    incidents = []
                    for inc in opened:
                        if inc.dedup_key not in cache:
                            exp = (
                                explainer.explain(inc, frames, graph)
                                if explainer is not None
                                else inc.explanation
                            )
                            cache[inc.dedup_key] = replace(inc, explanation=exp)
                        incidents.append(cache[inc.dedup_key])
                    assessment = replace(assessment, incidents=tuple(incidents))
                runs[name].append(assessment)
            done += 1
            if on_cycle is not None:
                on_cycle(done, len(times))
        i += len(chunk)
    judged = relevant_faults(faults, start, end)
    return replay(runs, judged, n_gpus=len(seen), start=start, end=end + step)
