"""``gpu-risk scan``: one full cycle against Prometheus (fetch, score, group), printed, no Slack.

Exit code 0 with the result (text table or the stable JSON shape of ``ScanResult.as_dict``);
exit code 2 with one line on stderr when Prometheus is unreachable, slow, erroring or answers
half-empty, or when the configuration is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from analysis.types import FleetFrames, Incident, ScanResult, Topology, format_time
from bot.commands.common import ConfigOption, UserError, guarded, parse_at, settings_from
from bot.config import Settings
from storage.source import MetricsSource

if TYPE_CHECKING:
    import networkx as nx

    from analysis.scorer import Scorer


class FormatChoice(StrEnum):
    """Output formats of ``scan``."""

    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add the ``scan`` command."""
    app.command("scan")(guarded(scan))


def scan(
    *,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            "--prometheus-url", help="Prometheus (or PromQL API) base URL [GPU_RISK_PROMETHEUS_URL]"
        ),
    ] = None,
    topology: Annotated[
        Path | None, typer.Option("--topology", help="topology.yaml [GPU_RISK_TOPOLOGY]")
    ] = None,
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
    config: Path | None = ConfigOption,
) -> None:
    """Run one scan cycle against Prometheus and print the incidents (no Slack)."""
    settings = settings_from(config, prometheus_url=prometheus_url, topology=topology)
    when = parse_at(at) or datetime.now(UTC).replace(microsecond=0)
    result = run_scan(settings, at=when, detector=detector, explain=explain)
    if output is FormatChoice.json:
        typer.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        print_result(result, Console())


def source_from_settings(settings: Settings, topology: Topology | None) -> MetricsSource:
    """Build the Prometheus reader from the settings (URL, auth, TLS, timeouts, label map)."""
    from storage.metrics import PrometheusSource

    if not settings.prometheus_url:
        raise UserError("no Prometheus URL: pass --prometheus-url or set GPU_RISK_PROMETHEUS_URL")
    basic = None
    if settings.prometheus_username:
        if settings.prometheus_password is None:
            raise UserError(
                "GPU_RISK_PROMETHEUS_USERNAME is set but GPU_RISK_PROMETHEUS_PASSWORD is not"
            )
        basic = (settings.prometheus_username, settings.prometheus_password.get_secret_value())
    token = settings.prometheus_bearer_token
    return PrometheusSource(
        settings.prometheus_url,
        topology=topology,
        bearer_token=token.get_secret_value() if token else None,
        basic_auth=basic,
        ca_file=str(settings.prometheus_ca_file) if settings.prometheus_ca_file else None,
        verify_tls=settings.prometheus_verify_tls,
        timeout=settings.prometheus_timeout,
        retries=settings.prometheus_retries,
        label_map=settings.label_map or None,
    )


def run_scan(
    settings: Settings,
    *,
    at: datetime,
    detector: str | None = None,
    source: MetricsSource | None = None,
    explain: bool = True,
) -> ScanResult:
    """One cycle as the running bot would see it at ``at``: fetch, score, group, explain.

    A learning detector uses the model stored for this fleet (``GPU_RISK_MODEL_DIR``) when there
    is one, else fits on the history before the window. Incidents pass the product's hysteresis
    (the previous ``GPU_RISK_OPEN_AFTER`` cycles are assessed too) and are explained.
    """
    from analysis.features import slice_frames
    from analysis.graph import build_graph
    from analysis.scoring import scan_with_hysteresis
    from bot.scorers import make_scorer, resolve_detector
    from storage.topology import load_topology

    topo = load_topology(settings.topology) if settings.topology is not None else None
    src = source if source is not None else source_from_settings(settings, topo)
    name = resolve_detector(detector, settings)
    scorer = make_scorer(name, settings)
    step = timedelta(seconds=settings.step_seconds)
    cycle = timedelta(seconds=settings.scan_interval)
    learning = getattr(scorer, "needs_history", True)
    window = max(
        timedelta(minutes=settings.window_minutes), getattr(scorer, "min_window", timedelta(0))
    )
    # The scan window plus the earlier cycles the hysteresis looks at.
    span = window + cycle * (settings.open_after - 1 if learning else 0)
    history_start = at - (timedelta(hours=settings.fit_window_hours) if learning else span)
    history = src.fetch(history_start, at, step)  # one query per metric for everything
    frames = slice_frames(history, at - span, at)
    graph = build_graph(topo or Topology(racks=()), frames.gpus)
    if learning:
        scorer = _stored(settings, scorer, graph) or scorer.fit(
            slice_frames(history, history_start, at - window), graph
        )
    assessment, incidents = scan_with_hysteresis(
        scorer,
        frames,
        graph,
        at,
        cycle=cycle,
        open_after=settings.open_after if learning else 1,
        close_after=settings.close_after,
    )
    if explain and incidents and learning:
        incidents = _explained(
            incidents,
            history=history,
            frames=frames,
            graph=graph,
            healthy_until=at - window,
            settings=settings,
        )
    return ScanResult(
        at=at,
        gpus_scored=len(assessment.scores) or len(frames.gpus),
        incidents=tuple(incidents),
        scores=assessment.scores,
        detector=name,
    )


def _stored(settings: Settings, scorer: Scorer, graph: nx.DiGraph) -> Scorer | None:
    """The model the running bot stored for this very fleet, if any (never another fleet's)."""
    from analysis.scoring import FeatureScorer, fleet_fingerprint
    from storage.model_store import ModelStore

    if not isinstance(scorer, FeatureScorer):
        return None
    return ModelStore(settings.model_dir).load(type(scorer), fleet_fingerprint(graph))


def _explained(
    incidents: Sequence[Incident],
    *,
    history: FleetFrames,
    frames: FleetFrames,
    graph: nx.DiGraph,
    healthy_until: datetime,
    settings: Settings,
) -> list[Incident]:
    """Attach the causal explanation to each incident (fitted on the history before the window)."""
    from analysis.explain import Explainer
    from analysis.features import slice_frames

    explainer = Explainer(random_state=settings.random_state).fit(
        slice_frames(history, history.start, healthy_until), graph
    )
    return [replace(i, explanation=explainer.explain(i, frames, graph)) for i in incidents]


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
