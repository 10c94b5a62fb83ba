"""Scans and what they measure: scan runs, data source state, score history, model versions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from analysis.types import GpuScore, format_time
from storage.models import (
    IncidentRow,
    LatestScoreRow,
    ModelBlobRow,
    ModelVersionRow,
    OutboxRow,
    RuntimeStateRow,
    ScanRunRow,
    ScoreRow,
)
from storage.outbox import enqueue_row
from storage.records import (
    DATA_SOURCE_KIND,
    DataSourceChange,
    DataSourceState,
    ModelVersion,
    ScanRun,
    StoreStatus,
    model_version,
    require_aware,
    scan_run,
)

#: The risk from which a GPU's score joins the score history (below it, only the latest cycle's
#: score is stored; every score is the bot's ``gpu_risk_score`` gauge for the TSDB to keep).
DEFAULT_SCORE_HISTORY_MIN = 0.5


class ScanStore:
    """Record scans, scores and models and report the store's status; one transaction per call.

    A mixin of ``storage.repository.Repository``, which provides the attributes below.
    """

    degrade_after: int
    cluster: str | None
    score_history_min: float
    _sessions: sessionmaker[Session]
    _readers: sessionmaker[Session]

    def _where(self, column: Any) -> list[Any]:
        """WHERE clauses keeping this store's cluster's rows (none when unscoped)."""
        return [] if self.cluster is None else [column == self.cluster]

    # ------------------------------------------------------------------ scans and data source

    def record_scan(
        self,
        at: datetime,
        ok: bool,
        duration_s: float,
        gpus_scored: int,
        error: str | None = None,
        *,
        notify: bool = True,
    ) -> DataSourceChange | None:
        """Record a scan; return ``degraded``/``recovered`` when the data source state changed.

        The source turns degraded after ``degrade_after`` failed scans in a row and recovers on
        the first good one. On a change, and when ``notify``, ONE outbox row of kind
        ``data_source`` (payload ``state``, ``since``, ``error``, ``cluster``) is committed with
        the scan. A scoped store records its cluster's scan and its cluster's source state.
        """
        require_aware(at, "at")
        cluster = self.cluster or ""
        with self._sessions.begin() as s:
            scan = ScanRunRow(
                at=at,
                ok=ok,
                error=error,
                duration_s=float(duration_s),
                gpus_scored=gpus_scored,
                cluster=cluster,
            )
            s.add(scan)
            name = source_state_name(cluster)
            state = s.get(RuntimeStateRow, name)
            change: DataSourceChange | None = None
            if state is None:
                state = RuntimeStateRow(name=name, value="ok", since=at, counter=0)
                s.add(state)
            if ok:
                state.counter = 0
                if state.value == "degraded":
                    state.value, state.since, change = "ok", at, "recovered"
            else:
                state.counter += 1
                if state.value != "degraded" and state.counter >= self.degrade_after:
                    state.value, state.since, change = "degraded", at, "degraded"
            s.flush()
            if change is not None and notify:
                enqueue_row(
                    s,
                    at=at,
                    kind=DATA_SOURCE_KIND,
                    incident_id=None,
                    idempotency_key=f"{DATA_SOURCE_KIND}:{change}:{scan.id}",
                    payload={
                        "cluster": cluster,
                        "state": state.value,
                        "change": change,
                        "since": format_time(at),
                        "error": error,
                        "consecutive_failures": state.counter,
                    },
                )
            return change

    def scans(self, limit: int = 20) -> list[ScanRun]:
        """Return the most recent scans, newest first."""
        with self._readers() as s:
            q = (
                select(ScanRunRow)
                .where(*self._where(ScanRunRow.cluster))
                .order_by(ScanRunRow.at.desc(), ScanRunRow.id.desc())
            )
            return [scan_run(r) for r in s.scalars(q.limit(limit))]

    def status(self) -> StoreStatus:
        """Return last scan, last good scan, data source state, newest model, open counts.

        Scoped: those of its cluster (the notification counts are the whole outbox's).
        Unscoped: the newest of any cluster, and the data source state of the cluster ``""``.
        """
        with self._readers() as s:
            newest = (
                select(ScanRunRow)
                .where(*self._where(ScanRunRow.cluster))
                .order_by(ScanRunRow.at.desc(), ScanRunRow.id.desc())
            )
            last = s.scalar(newest.limit(1))
            last_ok = s.scalar(newest.where(ScanRunRow.ok.is_(True)).limit(1))
            state = s.get(RuntimeStateRow, source_state_name(self.cluster or ""))
            model = s.scalar(
                select(ModelVersionRow)
                .where(*self._where(ModelVersionRow.cluster))
                .order_by(ModelVersionRow.fitted_at.desc(), ModelVersionRow.id.desc())
                .limit(1)
            )
            counts = dict(
                s.execute(
                    select(IncidentRow.status, func.count())
                    .where(IncidentRow.open_key.is_not(None), *self._where(IncidentRow.cluster))
                    .group_by(IncidentRow.status)
                ).all()
            )
            outbox = dict(
                s.execute(
                    select(OutboxRow.status, func.count())
                    .where(OutboxRow.status.in_(("pending", "dead")))
                    .group_by(OutboxRow.status)
                ).all()
            )
            source: DataSourceState = "unknown"
            if state is not None:
                source = "degraded" if state.value == "degraded" else "ok"
            return StoreStatus(
                last_scan=scan_run(last) if last else None,
                last_ok_scan=scan_run(last_ok) if last_ok else None,
                data_source=source,
                data_source_since=state.since if state else None,
                consecutive_failures=state.counter if state else 0,
                model=model_version(model) if model else None,
                open_incidents=int(counts.get("open", 0)) + int(counts.get("acknowledged", 0)),
                acknowledged_incidents=int(counts.get("acknowledged", 0)),
                pending_notifications=int(outbox.get("pending", 0)),
                dead_notifications=int(outbox.get("dead", 0)),
            )

    # ------------------------------------------------------------------ scores

    def record_scores(self, at: datetime, scores: Iterable[GpuScore]) -> int:
        """Store one cycle's GPU scores (:func:`insert_scores`); return the history rows written."""
        require_aware(at, "at")
        with self._sessions.begin() as s:
            return insert_scores(s, at, scores, self.cluster or "", self.score_history_min)

    def prune_scores(self, older_than: datetime) -> int:
        """Delete score history before ``older_than`` (the retention cut), and the latest scores
        of a cluster not scored since; return the history rows deleted."""
        require_aware(older_than, "older_than")
        with self._sessions.begin() as s:
            s.execute(delete(LatestScoreRow).where(LatestScoreRow.at < older_than))
            result = s.execute(delete(ScoreRow).where(ScoreRow.at < older_than))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def top_gpus(self, limit: int = 10) -> list[GpuScore]:
        """Return the riskiest GPUs of the most recent scored cycle, riskiest first.

        Scoped: its cluster's latest cycle; unscoped: each cluster's latest cycle.
        """
        with self._readers() as s:
            rows = s.execute(
                select(LatestScoreRow.gpu_key, LatestScoreRow.score)
                .where(*self._where(LatestScoreRow.cluster))
                .order_by(LatestScoreRow.score.desc(), LatestScoreRow.gpu_key)
                .limit(limit)
            ).all()
        out = []
        for key, score in rows:
            node, _, gpu = str(key).rpartition("/")
            out.append(GpuScore(node=node, gpu=gpu, score=float(score)))
        return out

    def score_history(
        self, gpu_key: str, *, since: datetime | None = None
    ) -> list[tuple[datetime, float]]:
        """Return (at, score) of one GPU, oldest first: the cycles it scored at least
        ``score_history_min`` (all of them when that is 0)."""
        with self._readers() as s:
            q = select(ScoreRow.at, ScoreRow.score).where(
                ScoreRow.gpu_key == gpu_key, *self._where(ScoreRow.cluster)
            )
            if since is not None:
                q = q.where(ScoreRow.at >= since)
            return [(a, float(v)) for a, v in s.execute(q.order_by(ScoreRow.at)).all()]

    # ------------------------------------------------------------------ models

    def record_model(
        self,
        *,
        name: str,
        fleet_fingerprint: str,
        features: Sequence[str],
        version: str,
        path: str,
        fitted_at: datetime,
        metrics: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Record a fitted model (its file lives at ``path``; this is the index of them)."""
        require_aware(fitted_at, "fitted_at")
        with self._sessions.begin() as s:
            row = ModelVersionRow(
                cluster=self.cluster or "",
                name=name,
                fleet_fingerprint=fleet_fingerprint,
                features=list(features),
                version=version,
                path=path,
                fitted_at=fitted_at,
                metrics=dict(metrics or {}),
            )
            s.add(row)
            s.flush()
            return model_version(row)

    def latest_model(
        self, *, name: str | None = None, fleet_fingerprint: str | None = None
    ) -> ModelVersion | None:
        """Return the newest model (optionally of a name and for a fleet), or None."""
        with self._readers() as s:
            q = select(ModelVersionRow).where(*self._where(ModelVersionRow.cluster))
            if name is not None:
                q = q.where(ModelVersionRow.name == name)
            if fleet_fingerprint is not None:
                q = q.where(ModelVersionRow.fleet_fingerprint == fleet_fingerprint)
            row = s.scalar(
                q.order_by(ModelVersionRow.fitted_at.desc(), ModelVersionRow.id.desc()).limit(1)
            )
            return model_version(row) if row else None


# ---------------------------------------------------------------------- in an open transaction


def source_state_name(cluster: str) -> str:
    """The runtime state row of a cluster's data source (``data_source`` for the cluster ``""``)."""
    return f"{DATA_SOURCE_KIND}:{cluster}" if cluster else DATA_SOURCE_KIND


def insert_scores(
    s: Session,
    at: datetime,
    scores: Iterable[GpuScore],
    cluster: str = "",
    history_min: float = 0.0,
) -> int:
    """Store one cycle's scores (of ``cluster``): every GPU's replaces the cluster's latest
    cycle, and those at least ``history_min`` are appended to the history. Return how many
    history rows were written."""
    best: dict[str, float] = {}
    for g in scores:  # one row per GPU (a key given twice keeps its highest)
        best[g.key] = max(float(g.score), best.get(g.key, float("-inf")))
    if not best:  # a cycle that scored nothing leaves the last one's scores
        return 0
    s.execute(delete(LatestScoreRow).where(LatestScoreRow.cluster == cluster))
    s.execute(
        insert(LatestScoreRow),
        [{"cluster": cluster, "gpu_key": k, "at": at, "score": v} for k, v in best.items()],
    )
    kept = [
        {"at": at, "gpu_key": k, "score": v, "cluster": cluster}
        for k, v in best.items()
        if v >= history_min
    ]
    if kept:
        s.execute(insert(ScoreRow), kept)
    return len(kept)


class ModelBlobStore:
    """Fitted models' bytes in the database (a mixin of ``Repository``, like ``ScanStore``)."""

    _sessions: sessionmaker[Session]
    _readers: sessionmaker[Session]

    def save_model_blob(self, name: str, data: bytes, *, at: datetime) -> None:
        """Insert or replace the model bytes stored as ``name``."""
        require_aware(at, "at")
        with self._sessions.begin() as s:
            row = s.get(ModelBlobRow, name)
            if row is None:
                s.add(ModelBlobRow(name=name, data=data, saved_at=at))
            else:
                row.data, row.saved_at = data, at

    def model_blob(self, name: str) -> bytes | None:
        """Return the model bytes stored as ``name``, or None."""
        with self._readers() as s:
            row = s.get(ModelBlobRow, name)
            return bytes(row.data) if row is not None else None
