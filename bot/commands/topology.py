"""``gpu-risk topology show``: the dependency graph the bot would use, and where each fact came from.

With ``GPU_RISK_TOPOLOGY_LABELS`` the topology is read from metric labels and completed by the
file; every line says ``from labels`` or ``from file``, and disagreements (the file wins) are
listed. Without it, the file alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from bot.commands.common import (
    ConfigOption,
    PrometheusUrlOption,
    TopologyOption,
    UserError,
    guarded,
    parse_at,
    settings_from,
)


def register(app: typer.Typer) -> None:
    """Add the ``topology`` command group (show)."""
    topo = typer.Typer(
        name="topology",
        help="Show the hardware topology the bot would use (from labels and/or topology.yaml).",
        no_args_is_help=True,
    )
    topo.command("show")(guarded(show))
    app.add_typer(topo, name="topology")


def show(
    config: Path | None = ConfigOption,
    prometheus_url: PrometheusUrlOption = None,
    topology: TopologyOption = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Read the labels at this time (RFC 3339; now)")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Print racks -> nodes and components -> racks, each line saying where it came from."""
    from bot.wiring import discover_topology_of

    if output not in ("text", "json"):
        raise UserError(f"--format must be text or json, not {output!r}")
    settings = settings_from(config, prometheus_url=prometheus_url, topology=topology)
    if not settings.topology_labels and settings.topology is None:
        raise UserError(
            "no topology configured: set GPU_RISK_TOPOLOGY (a topology.yaml) and/or "
            "GPU_RISK_TOPOLOGY_LABELS (racks and switches from metric labels)"
        )
    found = discover_topology_of(settings, at=parse_at(at))
    data = found.as_dict()
    if output == "json":
        typer.echo(json.dumps(data, indent=2))
        return
    console = Console(highlight=False, soft_wrap=True)
    for line in text_lines(data):
        console.print(escape(line))


def text_lines(data: dict[str, Any]) -> list[str]:
    """The text form of :meth:`storage.discovery.Discovered.as_dict`."""
    lines = ["racks -> nodes"]
    for rack in data["racks"]:
        lines.append(f"  {rack['id']}  (from {_from(rack['from'])})")
        for node in rack["nodes"]:
            lines.append(f"    {node['name']}  from {_from(node['from'])}")
    lines.append("components -> racks")
    for comp in data["components"]:
        metrics = "" if comp["metrics"] else ", no metrics"
        head = f"  {comp['id']} ({comp['kind']}{metrics})"
        if not comp["racks"]:
            lines.append(f"{head}: feeds no rack  from file")
        for served in comp["racks"]:
            nodes = f" (nodes {', '.join(served['nodes'])})" if served["nodes"] else ""
            lines.append(f"{head} -> {served['rack']}{nodes}  from {_from(served['from'])}")
    for conflict in data["conflicts"]:
        lines.append(f"conflict: {conflict}")
    for note in data["notes"]:
        lines.append(f"note: {note}")
    return lines


def _from(source: str) -> str:
    """``labels``, ``file`` or ``file and labels``."""
    return " and ".join(source.split("+"))
