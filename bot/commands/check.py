"""``gpu-risk check``: validate the configuration, then connect and say exactly what is wrong.

First the settings (exit 2 on a problem: nothing is contacted). Then, unless ``--offline``, the
wiring itself, one line per finding (``✓`` works, ``✗`` broken with what to do, ``!`` worth
knowing but not blocking): Prometheus reachable and authorized; the expected series present;
the topology (labels and file) readable, its components' PromQL valid and returning data, its
node names matching DCGM's ``Hostname``; Slack's token, scopes and channels; Alertmanager. Exit
0 only when nothing is ``✗`` (1 otherwise). Credentials are masked everywhere. With a clusters
file (``GPU_RISK_CLUSTERS``) every cluster is checked: a finding of one cluster only is prefixed
``cluster <name>:``, one every cluster shares (the Slack token) is said once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.commands.check_alertmanager import alertmanager_findings
from bot.commands.check_findings import Finding, lines
from bot.commands.check_prometheus import (
    COUNTERS_HINT,
    MAX_COMPONENT_QUERIES,
    OPT_IN_DCGM,
    prometheus_findings,
)
from bot.commands.check_slack import MANIFEST, manifest_scopes, slack_findings
from bot.commands.common import ConfigOption, guarded, parse_at, settings_from
from storage.redact import redact_text, redact_url

if TYPE_CHECKING:
    from bot.config import Settings

# The live checks live by target (check_prometheus, check_slack, check_alertmanager); their
# public names stay importable from here.
__all__ = [
    "COUNTERS_HINT",
    "MANIFEST",
    "MAX_COMPONENT_QUERIES",
    "OPT_IN_DCGM",
    "Finding",
    "alertmanager_findings",
    "check",
    "lines",
    "manifest_scopes",
    "prometheus_findings",
    "register",
    "slack_findings",
]


def register(app: typer.Typer) -> None:
    """Add the ``check`` command."""
    app.command("check")(guarded(check))


def check(
    config: Path | None = ConfigOption,
    slack: bool = typer.Option(False, "--slack", help="Also require the Slack settings"),
    prometheus: bool = typer.Option(
        True, "--prometheus/--no-prometheus", help="Require Prometheus"
    ),
    at: Annotated[
        str | None,
        typer.Option("--at", help="Look for series at this time (RFC 3339; default: now)"),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Only validate the settings; contact nothing")
    ] = False,
) -> None:
    """Validate the configuration (environment, --config file, topology) and list problems."""
    from bot.clusters import clusters_of
    from bot.config import problems
    from storage.topology import load_topology

    settings = settings_from(config)
    when = parse_at(at)
    needs = tuple(n for n, on in (("prometheus", prometheus), ("slack", slack)) if on)
    found = problems(settings, needs=needs)
    clusters = clusters_of(settings)
    for c in clusters:
        topology_file, named = c.settings.topology, f"cluster {c.name}: " if c.key else ""
        if topology_file is None or not topology_file.is_file():
            continue
        try:
            topo = load_topology(topology_file, partial=bool(c.settings.topology_labels))
        except ValueError as exc:
            found.append(named + str(exc))
        else:
            Console().print(
                f"{named}topology: {len(topo.racks)} racks, {len(topo.nodes)} nodes, "
                f"{len(topo.components)} components with metrics"
            )
    _print_summary(settings)
    if found:
        for line in found:
            Console(stderr=True).print(f"[red]✗[/] {escape(redact_text(line))}", highlight=False)
        raise typer.Exit(code=2)
    Console().print("[green]✓ configuration is valid[/]")
    if offline:
        return
    per_cluster: dict[str, list[Finding]] = {}
    for c in clusters:
        mine = per_cluster.setdefault(c.name, [])
        if prometheus and c.settings.prometheus_url:
            mine += prometheus_findings(c.settings, when)
        if slack or settings.slack_bot_token is not None:
            mine += slack_findings(c.settings)
    findings = _by_cluster(per_cluster) if settings.clusters else per_cluster[clusters[0].name]
    if getattr(settings, "alertmanager_url", None):
        findings += alertmanager_findings(settings)
    console = Console(highlight=False, soft_wrap=True)
    for f in findings:
        console.print(escape(f.line()))
    if any(f.ok is False for f in findings):
        raise typer.Exit(code=1)


def _by_cluster(per_cluster: dict[str, list[Finding]]) -> list[Finding]:
    """Findings of several clusters: those every cluster has once, the others naming theirs."""
    every = [
        f for f in next(iter(per_cluster.values())) if all(f in v for v in per_cluster.values())
    ]
    out = list(dict.fromkeys(every))
    for name, found in per_cluster.items():
        out += [Finding(f.ok, f"cluster {name}: {f.text}") for f in found if f not in every]
    return out


# ---------------------------------------------------------------------------------- summary


def _print_summary(settings: Settings) -> None:
    """Show the effective settings, secrets masked (credentials in URLs too)."""
    table = Table("setting", "value", title="effective configuration")
    for name, value in settings.model_dump().items():
        table.add_row(name, escape(_shown(name, value)))
    Console().print(table)


def _shown(name: str, value: object) -> str:
    """How one setting is shown: ``-`` when unset, ``***`` for secrets, URLs redacted."""
    if value is None:
        return "-"
    if any(word in name for word in ("token", "secret", "password")):
        return "***"
    if name == "prometheus_headers" and isinstance(value, dict):
        return ", ".join(f"{k}: ***" for k in value) or "{}"
    if name == "clusters" and isinstance(value, list | tuple):  # each listed below, masked
        return ", ".join(str(c.get("name")) for c in value if isinstance(c, dict)) or "-"
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return redact_text(str(value))
