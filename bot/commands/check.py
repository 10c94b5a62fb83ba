"""``gpu-risk check``: validate the configuration and say exactly what is wrong or missing."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.commands.common import ConfigOption, guarded, settings_from
from bot.config import Settings, problems
from storage.redact import redact_text, redact_url
from storage.topology import load_topology


def register(app: typer.Typer) -> None:
    """Add the ``check`` command."""
    app.command("check")(guarded(check))


def check(
    config: Path | None = ConfigOption,
    slack: bool = typer.Option(False, "--slack", help="Also require the Slack settings"),
    prometheus: bool = typer.Option(
        True, "--prometheus/--no-prometheus", help="Require Prometheus"
    ),
) -> None:
    """Validate the configuration (environment, --config file, topology) and list problems."""
    settings = settings_from(config)
    needs = tuple(n for n, on in (("prometheus", prometheus), ("slack", slack)) if on)
    found = problems(settings, needs=needs)
    if settings.topology is not None and settings.topology.is_file():
        try:
            topo = load_topology(settings.topology)
        except ValueError as exc:
            found.append(str(exc))
        else:
            Console().print(
                f"topology: {len(topo.racks)} racks, {len(topo.nodes)} nodes, "
                f"{len(topo.components)} components with metrics"
            )
    _print_summary(settings)
    if found:
        for line in found:
            Console(stderr=True).print(f"[red]✗[/] {escape(redact_text(line))}", highlight=False)
        raise typer.Exit(code=2)
    Console().print("[green]✓ configuration is valid[/]")


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
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return redact_text(str(value))
