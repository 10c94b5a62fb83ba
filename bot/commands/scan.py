"""``gpu-risk scan``: one full cycle against Prometheus (fetch, score, group), printed, no Slack.

Exit code 0 with the result (text table or the stable JSON shape of ``ScanResult.as_dict``);
exit code 2 with one line on stderr when Prometheus is unreachable, slow, erroring or answers
half-empty, or when the configuration is wrong.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.commands.common import (
    ConfigOption,
    PrometheusUrlOption,
    TopologyOption,
    UserError,
    guarded,
    parse_at,
    settings_from,
)

if TYPE_CHECKING:
    import networkx as nx

    from analysis.sustained import SustainedRisk
    from analysis.types import FleetFrames, Incident, ScanResult
    from bot.config import Settings
    from bot.pipeline import Pipeline
    from storage.source import MetricsSource


#: A scan of a time at least this long ago reads the reported cycle's reductions with the cycles
#: before it (one range query per reduction): no TSDB holds its points back any more
#: (VictoriaMetrics' ``-search.latencyOffset`` is 30 s by default).
SETTLED = timedelta(minutes=10)

logger = logging.getLogger(__name__)


class FormatChoice(StrEnum):
    """Output formats of ``scan``."""

    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add the ``scan`` command."""
    app.command("scan")(guarded(scan))


def scan(
    *,
    prometheus_url: PrometheusUrlOption = None,
    topology: TopologyOption = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Scan as of this RFC 3339 time (default: now)")
    ] = None,
    output: Annotated[FormatChoice, typer.Option("--format", help="text or json")] = (
        FormatChoice.text
    ),
    detector: Annotated[
        str | None,
        typer.Option(
            "--detector",
            help="graph (default), iforest, ecod, copod, hbos, static [GPU_RISK_DETECTOR]",
        ),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain/--no-explain", help="Explain each incident (DoWhy)")
    ] = True,
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", help="With a clusters file: scan this cluster (default: each)"),
    ] = None,
    config: Path | None = ConfigOption,
) -> None:
    """Run one scan cycle against Prometheus and print the incidents (no Slack)."""
    from bot.clusters import clusters_of

    settings = settings_from(config, prometheus_url=prometheus_url, topology=topology)
    now = datetime.now(UTC)
    when = parse_at(at) or now.replace(microsecond=0)
    clusters = clusters_of(settings)
    if cluster is not None:
        clusters = tuple(c for c in clusters if c.name == cluster)
        if not clusters or not settings.clusters:
            known = ", ".join(c.name for c in clusters_of(settings) if c.key) or "none"
            raise UserError(f"--cluster {cluster}: no such cluster in GPU_RISK_CLUSTERS ({known})")
    if output is FormatChoice.json and len(clusters) > 1:
        names = ", ".join(c.name for c in clusters)
        raise UserError(f"--format json scans one cluster: add --cluster (one of {names})")
    for c in clusters:
        result = run_scan(
            c.settings, at=when, detector=detector, explain=explain, settled=now - SETTLED
        )
        if output is FormatChoice.json:
            typer.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        else:
            if c.key:
                Console().rule(f"cluster {c.name}")
            print_result(result, Console())


def run_scan(
    settings: Settings,
    *,
    at: datetime,
    detector: str | None = None,
    source: MetricsSource | None = None,
    explain: bool = True,
    settled: datetime | None = None,
) -> ScanResult:
    """One cycle of the running bot's loop at ``at``, on an in-memory store: nothing is written.

    The pipeline is the one ``gpu-risk run`` uses (``bot/wiring.build_pipeline``). A learning
    detector uses the model stored for this fleet (``GPU_RISK_MODEL_DIR``) when there is one,
    else fits on the history before the first cycle. So that the incident tracker opens what the
    running bot would have open, the cycles before ``at`` (one ``GPU_RISK_SCAN_INTERVAL`` apart)
    that a streak needs (``GPU_RISK_OPEN_AFTER``, ``GPU_RISK_OPEN_FOR``), and those at the
    checkpoints of a risk held for ``GPU_RISK_SUSTAINED_FOR`` (every 15 minutes back from ``at``:
    ``analysis.sustained``), are run first, each a
    cycle of the running bot: its reductions from the TSDB, its fit on a sample of nodes past
    ``GPU_RISK_FIT_MAX_GPUS`` (no raw history of the whole fleet is read at once). Their
    overlapping windows are read at once (``storage.span_source.SpanSource``: the same frames and
    reductions as each cycle's own reads), and their peer metrics compared once for the span
    (``analysis.feature_memo.SpanFeatures``: the same features). ``settled``: when ``at`` is
    at or before it, its reductions are read with the others' (``SpanSource.settled``).
    """
    from analysis.feature_memo import SpanFeatures
    from analysis.types import ScanResult
    from bot.replay import Replay, ReplayError
    from bot.wiring import (
        SCAN,
        build_pipeline,
        build_source,
        load_topology_of,
        memory_repository,
        share_features,
    )
    from storage.source import MetricsSourceError
    from storage.span_source import SpanSource

    topo = load_topology_of(settings)
    src = source if source is not None else build_source(settings, topo)
    pipeline = build_pipeline(
        settings,
        source=src,
        topology=topo,
        repository=memory_repository(),
        options=replace(SCAN, detector=detector, explain=explain),
    )
    pipeline.defer_explainer = True  # a scan of a healthy fleet explains nothing: no fit for it
    cycle = timedelta(seconds=settings.scan_interval)
    # enough cycles before ``at`` for a streak to reach GPU_RISK_OPEN_AFTER and GPU_RISK_OPEN_FOR
    spans = -(-settings.open_for // settings.scan_interval)  # ceil
    warm_up = 0 if pipeline.self_gating else max(settings.open_after - 1, spans)
    times = scan_times(at, cycle, warm_up, pipeline.sustained)
    if len(times) > 1:  # the cycles' overlapping windows read at once (the same frames) ...
        span = SpanSource(src, times, pipeline.reads, settled=settled)
        pipeline.source = span
        # ... and their peer metrics compared once for the span (the same features)
        share_features(pipeline, SpanFeatures(span_of=span.span_of))
    if pipeline.needs_history:
        # Like the running bot, remember every GPU seen within the fit window: one that fell off
        # the bus before the scan window is still scored (as vanished), not silently dropped.
        try:
            seen = pipeline.reporting(times[0] - pipeline.fit_window, times[0])
        except MetricsSourceError as exc:
            raise UserError(f"scan failed: {exc}") from None
        graph = pipeline.graph_of(seen)
        if len(times) > 1 and getattr(src, "concurrent_reads", False):
            fit_beside_span(pipeline, graph, times[0])
    driver = Replay({"scan": pipeline}, refit_every=None)
    try:
        outcomes = [driver.step(t)["scan"] for t in times]
    except ReplayError as exc:
        raise UserError(f"scan failed: {exc}") from None
    finally:
        pipeline.repository.close()
    last = outcomes[-1]
    assert last.assessment is not None
    return ScanResult(
        at=at,
        gpus_scored=last.gpus_scored,
        incidents=last.incidents,
        scores=last.assessment.scores,
        detector=pipeline.make_scorer().name,
    )


def fit_beside_span(pipeline: Pipeline, graph: nx.DiGraph, at: datetime) -> None:
    """The model of a scan's first cycle at ``at``, a cold start's fit computing while another
    thread reads the cycles' span (``Pipeline.read_window``: the whole span and every cycle's
    reductions, kept by the ``SpanSource``), sent once the fit has read its history: the
    server serves the span while this process fits. The fleet is the one the scan saw in the
    fit window (``graph``); a first cycle seeing another fleet fits again, as it would have. A
    read or fit that fails here is left to the first cycle, which tries again and reports it
    as it would have.
    """
    from analysis.fit_window import NotEnoughHistoryError
    from storage.source import MetricsSourceError

    with ThreadPoolExecutor(1, thread_name_prefix="span") as pool:
        ahead: list[Future[FleetFrames]] = []

        def read_span() -> None:
            ahead.append(pool.submit(pipeline.read_window, at))

        try:
            pipeline.model_for(graph, at, history_read=read_span)
        except (MetricsSourceError, NotEnoughHistoryError) as exc:
            logger.info("the scan's fit at %s is left to its first cycle: %s", at.isoformat(), exc)
        for read in ahead:
            try:
                read.result()
            except MetricsSourceError as exc:
                logger.info("the scan's span is left to its first cycle: %s", exc)


def scan_times(
    at: datetime, cycle: timedelta, warm_up: int, sustained: SustainedRisk | None
) -> list[datetime]:
    """The cycles a one-shot scan at ``at`` runs, oldest first: the ``warm_up`` cycles before
    it one ``cycle`` apart, and the checkpoints of a risk held (``sustained``), each judged as
    the running bot judges it (:meth:`analysis.sustained.SustainedRisk.held`)."""
    times = {at - i * cycle for i in range(warm_up + 1)}
    if sustained is not None:
        times.update(sustained.checkpoints(at))
    return sorted(times)


def _gpu_list(inc: Incident, limit: int = 8) -> str:
    """The incident's GPUs, short: ``gpu-node-007: 0, 3`` or ``node/gpu`` keys across nodes."""
    if not inc.gpus:
        return "-"
    nodes = {g.node for g in inc.gpus}
    if len(nodes) == 1:
        text = f"{inc.gpus[0].node}: " + ", ".join(g.gpu for g in inc.gpus[:limit])
    else:
        text = ", ".join(g.key for g in inc.gpus[:limit])
    return text + (f" (+{len(inc.gpus) - limit} more)" if len(inc.gpus) > limit else "")


def print_result(result: ScanResult, console: Console) -> None:
    """Print a scan result as a readable table."""
    from analysis.types import format_time

    n = len(result.incidents)
    console.print(
        f"[bold]scan at {format_time(result.at)}[/]: {result.gpus_scored} GPUs scored, "
        f"{n} incident{'s' if n != 1 else ''} (detector {result.detector})",
        highlight=False,
    )
    if not n:
        console.print("[green]no GPU at risk[/]")
        return
    table = Table("severity", "root cause", "GPUs", "score", "why", show_lines=False)
    colour = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
    for inc in sorted(result.incidents, key=lambda i: (i.severity != "critical", -i.score)):
        gpus = _gpu_list(inc)
        table.add_row(
            f"[{colour.get(inc.severity, '')}]{inc.severity}[/]",
            f"{inc.root_cause.kind} {inc.root_cause.id}",
            gpus,
            f"{inc.score:.2f}",
            inc.explanation.summary if inc.explanation else "",
        )
    console.print(table)
