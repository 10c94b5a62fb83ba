"""``/gpu-risk status`` (and the App Home's status) from the state store, one cluster or each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.blocks.models import MaintenanceView, StatusView
from storage.repository import Repository


def status_view_of(
    repo: Repository,
    *,
    data_source: str,
    now: datetime,
    maintenance: Sequence[MaintenanceView] = (),
    clusters: Sequence[str] = (),
    outbox: bool = True,
) -> StatusView:
    """The store's status as the builders want it; with ``clusters`` (a bot watching several),
    each cluster's too (its scans, source health, model and incidents; ``Repository.scoped``).
    ``outbox``: say how many notifications are queued or dead (once, not per cluster)."""
    st = repo.status()
    age = st.model_age(now)
    last = st.last_scan
    health = {"ok": True, "degraded": False}.get(st.data_source)
    detail = ""
    if st.data_source == "degraded":
        detail = f"{st.consecutive_failures} failed scan(s) in a row"
        if last and last.error:
            detail += f"; last error: {last.error}"
    if outbox and st.pending_notifications:
        detail += ("; " if detail else "") + f"{st.pending_notifications} notification(s) queued"
    if outbox and st.dead_notifications:  # dead letters: gave up after their last attempt
        detail += ("; " if detail else "") + f"{st.dead_notifications} notification(s) dead"
    per_cluster = tuple(
        (name, status_view_of(repo.scoped(name), data_source=data_source, now=now, outbox=False))
        for name in clusters
    )
    return StatusView(
        last_scan_at=last.at if last else None,
        last_scan_ok=last.ok if last else None,
        gpus_scored=last.gpus_scored if last else None,
        data_source=data_source,
        data_healthy=health,
        data_detail=detail,
        model_version=st.model.version if st.model else None,
        model_age_seconds=age.total_seconds() if age is not None else None,
        open_incidents=st.open_incidents,
        now=now,
        maintenance=tuple(maintenance),
        clusters=per_cluster,
    )
