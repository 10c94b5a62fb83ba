"""``gpu-risk outbox``: see the notifications that could not be delivered, and send them again.

A notification that failed ``GPU_RISK_OUTBOX_MAX_ATTEMPTS`` times is dead: it is kept, counted in
``/metrics`` and ``/gpu-risk status``, and never sent again on its own. After fixing the cause (a
revoked token, the bot removed from the channel) an admin lists and revives them here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.commands.common import ConfigOption, UserError, guarded, settings_from


def register(app: typer.Typer) -> None:
    """Add the ``outbox`` command."""
    app.command("outbox")(guarded(outbox))


def outbox(
    retry: Annotated[
        bool, typer.Option("--retry", help="Send the dead notifications back to the outbox")
    ] = False,
    ids: Annotated[
        list[int] | None,
        typer.Option("--id", help="With --retry: only this row (repeatable); default: all"),
    ] = None,
    config: Path | None = ConfigOption,
) -> None:
    """Notifications that could not be delivered: list them, send them again."""
    if retry:
        revive(ids, config)
    elif ids:
        raise UserError("--id goes with --retry: gpu-risk outbox --retry --id N")
    else:
        dead(config)


def dead(config: Path | None) -> None:
    """List the dead notifications (id, kind, incident, attempts, last error)."""
    from bot.wiring import open_repository

    repo = open_repository(settings_from(config).database_url)
    try:
        rows = repo.outbox(status="dead")
    finally:
        repo.close()
    console = Console()
    if not rows:
        console.print("[green]no dead notifications[/]")
        return
    table = Table("id", "kind", "incident", "attempts", "dead since", "last error")
    for item in rows:
        since = item.dead_at.strftime("%Y-%m-%d %H:%M UTC") if item.dead_at else "-"
        table.add_row(
            str(item.id),
            item.kind,
            str(item.incident_id or "-"),
            str(item.attempts),
            since,
            (item.last_error or "")[:80],
        )
    console.print(table)


def revive(ids: list[int] | None, config: Path | None) -> None:
    """Send dead notifications back to the outbox; the running bot delivers them next round."""
    from storage.repository import Repository

    if ids is not None and any(i <= 0 for i in ids):
        raise UserError("--id takes the positive ids that `gpu-risk outbox` lists")
    repo = Repository.from_url(settings_from(config).database_url)
    try:
        wanted = set(ids) if ids else None
        known = {item.id for item in repo.outbox(status="dead")}
        missing = sorted(wanted - known) if wanted else []
        if missing:
            raise UserError(
                f"no dead notification with id {', '.join(map(str, missing))}: "
                "`gpu-risk outbox` lists them"
            )
        revived = repo.retry_dead(at=datetime.now(UTC), ids=wanted)
    finally:
        repo.close()
    Console().print(f"{revived} notification(s) sent back to the outbox", highlight=False)
