"""``gpu-risk scan``: one full cycle against Prometheus (fetch, score, group), printed, no Slack.

Exit code 0 with the result (text table or the stable JSON shape of ``ScanResult.as_dict``);
exit code 2 with one line on stderr when Prometheus is unreachable, slow, erroring or answers
half-empty, or when the configuration is wrong.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from analysis.types import Incident, ScanResult, Topology, format_time
from bot.commands.common import ConfigOption, UserError, guarded, parse_at, settings_from
from bot.config import Settings
from storage.source import MetricsSource


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
        typer.Option("--detector", help="Scorer: static, ... [GPU_RISK_DETECTOR]"),
    ] = None,
    config: Path | None = ConfigOption,
) -> None:
    """Run one scan cycle against Prometheus and print the incidents (no Slack)."""
    settings = settings_from(config, prometheus_url=prometheus_url, topology=topology)
    when = parse_at(at) or datetime.now(UTC).replace(microsecond=0)
    result = run_scan(settings, at=when, detector=detector)
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
) -> ScanResult:
    """One cycle: fetch the window ending at ``at``, score it, and return the result."""
    from analysis.graph import build_graph
    from bot.scorers import make_scorer, resolve_detector
    from storage.topology import load_topology

    topo = load_topology(settings.topology) if settings.topology is not None else None
    src = source if source is not None else source_from_settings(settings, topo)
    name = resolve_detector(detector, settings)
    scorer = make_scorer(name, settings)
    step = timedelta(seconds=settings.step_seconds)
    window = max(
        timedelta(minutes=settings.window_minutes),
        getattr(scorer, "min_window", timedelta(0)),
    )
    frames = src.fetch(at - window, at, step)
    graph = build_graph(topo or Topology(racks=()), frames.gpus)
    if getattr(scorer, "needs_history", True):
        fit_start = at - timedelta(hours=settings.fit_window_hours)
        scorer.fit(src.fetch(fit_start, at - window, step), graph)
    assessment = scorer.assess(frames, graph, at)
    return ScanResult(
        at=at,
        gpus_scored=len(assessment.scores) or len(frames.gpus),
        incidents=assessment.incidents,
        scores=assessment.scores,
        detector=name,
    )


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
