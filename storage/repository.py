"""The state store: one ``Repository`` for all reads and writes, made of one store per aggregate.

- ``storage.incidents.IncidentStore``: cycle persistence, incident reads, acknowledgements,
  feedback, silences, Slack message references, images.
- ``storage.outbox.OutboxStore``: enqueue, claim, confirm and list notifications (the delivery
  guarantee is described there).
- ``storage.maintenance.MaintenanceStore``: maintenance windows added in Slack.
- ``storage.scans.ScanStore``: scan runs and data source state, status, score history, models.
- ``storage.records``: the frozen records they return.

The stores only persist: what a cycle means is decided by ``analysis.lifecycle.decide_cycle``.
Every public call is one short transaction on the repository's engine (a notification is
committed in the same transaction as the change that caused it). Time is always passed in
(``at=``); every datetime in and out is aware UTC.

The records and vocabularies are re-exported here, so callers import everything from
``storage.repository``.
"""

from __future__ import annotations

import copy
import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete

from analysis.lifecycle import DEFAULT_SCORE_EPSILON
from storage.db import make_engine, session_factory
from storage.db import upgrade as migrate
from storage.incidents import IncidentStore
from storage.maintenance import MaintenanceStore
from storage.models import SeenRequestRow
from storage.outbox import OutboxStore, dialect_insert
from storage.records import (
    DATA_SOURCE_KIND,
    VERDICTS,
    DataSourceChange,
    DataSourceState,
    FeedbackRecord,
    IncidentNotFoundError,
    IncidentRecord,
    MessageRef,
    ModelVersion,
    OutboxItem,
    OutboxStatus,
    ScanRun,
    SilenceRecord,
    StoreStatus,
    Verdict,
    require_aware,
)
from storage.scans import DEFAULT_SCORE_HISTORY_MIN, ModelBlobStore, ScanStore

__all__ = [
    "DATA_SOURCE_KIND",
    "VERDICTS",
    "DataSourceChange",
    "DataSourceState",
    "FeedbackRecord",
    "IncidentNotFoundError",
    "IncidentRecord",
    "MessageRef",
    "ModelVersion",
    "OutboxItem",
    "OutboxStatus",
    "Repository",
    "ScanRun",
    "SilenceRecord",
    "StoreStatus",
    "Verdict",
]


class Repository(IncidentStore, MaintenanceStore, OutboxStore, ScanStore, ModelBlobStore):
    """All reads and writes of the state store; one short transaction per call.

    Build with ``Repository(engine)`` (caller owns the engine) or ``Repository.from_url(url)``
    (migrates to head by default; ``close()`` disposes the engine). The aggregate stores it
    inherits share its engine and session factories.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        score_epsilon: float = DEFAULT_SCORE_EPSILON,
        degrade_after: int = 1,
        owns_engine: bool = False,
        cluster: str | None = None,
        score_history_min: float = DEFAULT_SCORE_HISTORY_MIN,
    ) -> None:
        """Use ``engine``; ``degrade_after`` failed scans in a row mark the source degraded.

        ``cluster``: see :meth:`scoped` (None: the whole store). ``score_history_min``: a GPU's
        score joins the score history only at cycles it is at least this (0: every score of
        every cycle); the latest cycle's scores are kept for every GPU whatever it is.
        """
        if not 0.0 <= score_history_min <= 1.0:
            raise ValueError(
                f"score_history_min must be a risk in [0, 1] (got {score_history_min})"
            )
        if degrade_after < 1:
            raise ValueError(f"degrade_after must be >= 1 (got {degrade_after})")
        self.cluster = cluster
        self.engine = engine
        self.score_epsilon = score_epsilon
        self.degrade_after = degrade_after
        self.score_history_min = score_history_min
        self._sessions = session_factory(engine)
        self._readers = session_factory(engine, read_only=True)
        self._owns_engine = owns_engine

    @classmethod
    def from_url(cls, url: str, *, migrate_schema: bool = True, **kwargs: Any) -> Repository:
        """Open the store at ``url`` (migrated to head unless ``migrate_schema`` is False)."""
        engine = make_engine(url)
        if migrate_schema:
            migrate(engine)
        return cls(engine, owns_engine=True, **kwargs)

    def scoped(self, cluster: str) -> Repository:
        """This store as one cluster's pipeline sees it (same engine, nothing to close).

        Its incidents, scans, data source state, scores and models are that cluster's: reads see
        only them, writes are stamped with it, and an incident's open key is unique within the
        cluster, so the same node name in two clusters never merges into one incident. Silences,
        maintenance windows and the outbox stay shared; feedback is read for the cluster's
        incidents. An unscoped repository (``cluster=None``) reads every cluster and writes the
        cluster ``""`` (a bot without a clusters file).
        """
        view = copy.copy(self)
        view.cluster = cluster
        view._owns_engine = False
        return view

    def close(self) -> None:
        """Dispose of the engine when this repository created it."""
        if self._owns_engine:
            self.engine.dispose()

    @property
    def dialect(self) -> str:
        """Return ``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def remember_request(self, signature: str, at: datetime, ttl: timedelta) -> bool:
        """Record a request signature; True when it is new (not seen within ``ttl`` before ``at``).

        Rows older than ``ttl`` are pruned in the same transaction, so a signature seen longer ago
        counts as new again. Safe between replicas: INSERT ... ON CONFLICT DO NOTHING decides.
        """
        require_aware(at, "at")
        if not signature:
            raise ValueError("signature must not be empty")
        with self._sessions.begin() as s:
            s.execute(delete(SeenRequestRow).where(SeenRequestRow.seen_at < at - ttl))
            stmt = (
                dialect_insert(s)(SeenRequestRow)
                .values(signature=_bounded(signature), seen_at=at)
                .on_conflict_do_nothing(index_elements=["signature"])
                .returning(SeenRequestRow.signature)
            )
            return s.execute(stmt).scalar() is not None


def _bounded(signature: str) -> str:
    """Return the signature, or its SHA-256 when it is longer than the column."""
    if len(signature) <= 255:
        return signature
    return "sha256:" + hashlib.sha256(signature.encode()).hexdigest()
