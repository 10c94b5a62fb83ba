"""Leader election among replicas: only the leader runs scans and the lifecycle.

- PostgreSQL: ``AdvisoryLock`` takes ``pg_try_advisory_lock`` on a dedicated, unpooled
  connection. The lock lives exactly as long as that session: a replica that dies (or whose
  connection drops) releases it at once, and another replica's next ``try_acquire`` wins.
- SQLite (or any database): ``LeaseLock`` keeps a row in ``leases`` (holder, expires_at) and renews
  it with a conditional UPDATE; a dead holder is replaced after its lease expires. On SQLite this
  guards against two processes on one file both leading.

Usage by the scheduler, each cycle: ``if lock.try_acquire(at): run_cycle() else: skip`` — for the
lease, a cycle must be shorter than ``ttl`` (renewed on every call); call ``release()`` on shutdown.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy import Connection, Engine, create_engine, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import NullPool

from storage.db import session_factory
from storage.models import LeaseRow

logger = logging.getLogger(__name__)

DEFAULT_LOCK_NAME = "gpu-risk-leader"


@runtime_checkable
class LeaderLock(Protocol):
    """A lock only one replica holds at a time."""

    holder: str

    def try_acquire(self, at: datetime) -> bool:
        """Take (or keep/renew) the leadership; return True when this replica leads."""
        ...

    def release(self, at: datetime) -> None:
        """Give up the leadership (idempotent)."""
        ...


def lock_key(name: str) -> int:
    """Return a stable signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class AdvisoryLock:
    """PostgreSQL session-level advisory lock held on a dedicated connection."""

    def __init__(self, engine: Engine, holder: str, name: str = DEFAULT_LOCK_NAME) -> None:
        """Lock ``name`` in the database of ``engine`` (a private unpooled engine is used)."""
        if engine.dialect.name != "postgresql":
            raise ValueError("AdvisoryLock needs PostgreSQL; use LeaseLock for SQLite")
        self.holder = holder
        self.name = name
        self.key = lock_key(name)
        # NullPool: closing the connection really ends the session, and with it the lock.
        self._engine = create_engine(engine.url, poolclass=NullPool)
        self._conn: Connection | None = None

    def try_acquire(self, at: datetime) -> bool:
        """Return True when this replica holds the lock (taking it if free)."""
        if self._conn is not None:
            if self._alive():
                return True
            self._drop()
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            )
        except Exception:
            logger.exception("could not try the leader lock %s", self.name)
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        logger.info("%s became leader (%s)", self.holder, self.name)
        return True

    def is_held(self) -> bool:
        """Return True while this replica's lock session is alive."""
        return self._conn is not None and self._alive()

    def release(self, at: datetime | None = None) -> None:
        """Unlock and close the dedicated connection (idempotent)."""
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        except Exception:
            logger.exception(
                "unlocking %s failed; closing the session releases it anyway", self.name
            )
        self._drop()

    def close(self) -> None:
        """Release and dispose of the private engine."""
        self.release()
        self._engine.dispose()

    def _alive(self) -> bool:
        """Return True when the lock's session still answers."""
        assert self._conn is not None
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except Exception:
            logger.exception("leader lock session %s died: leadership lost", self.name)
            return False

    def _drop(self) -> None:
        """Close the lock's connection, ignoring errors of a dead one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                logger.exception("closing the leader lock connection failed")


class LeaseLock:
    """A lease row: whoever holds an unexpired lease leads; renewed on every ``try_acquire``."""

    def __init__(
        self,
        engine: Engine,
        holder: str,
        ttl: timedelta = timedelta(seconds=180),
        name: str = DEFAULT_LOCK_NAME,
    ) -> None:
        """Lease ``name`` for ``ttl`` at a time as ``holder`` (unique per process)."""
        if ttl <= timedelta(0):
            raise ValueError(f"lease ttl must be positive (got {ttl})")
        self.holder = holder
        self.name = name
        self.ttl = ttl
        self._dialect = engine.dialect.name
        self._sessions = session_factory(engine)

    def try_acquire(self, at: datetime) -> bool:
        """Take or renew the lease when free, expired or already ours; return True if ours."""
        if at.tzinfo is None:
            raise ValueError("at must be an aware UTC datetime")
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        with self._sessions.begin() as s:
            s.execute(
                insert(LeaseRow)
                .values(name=self.name, holder=self.holder, expires_at=at + self.ttl)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            result = s.execute(
                update(LeaseRow)
                .where(
                    LeaseRow.name == self.name,
                    or_(LeaseRow.holder == self.holder, LeaseRow.expires_at <= at),
                )
                .values(holder=self.holder, expires_at=at + self.ttl)
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def current_holder(self, at: datetime) -> str | None:
        """Return who holds an unexpired lease at ``at``, or None."""
        with self._sessions() as s:
            row = s.scalar(select(LeaseRow).where(LeaseRow.name == self.name))
            return row.holder if row is not None and row.expires_at > at else None

    def release(self, at: datetime) -> None:
        """Expire our lease now so another replica can take over at once."""
        with self._sessions.begin() as s:
            s.execute(
                update(LeaseRow)
                .where(LeaseRow.name == self.name, LeaseRow.holder == self.holder)
                .values(expires_at=at)
                .execution_options(synchronize_session=False)
            )


def make_leader_lock(
    engine: Engine,
    holder: str,
    *,
    ttl: timedelta = timedelta(seconds=180),
    name: str = DEFAULT_LOCK_NAME,
) -> AdvisoryLock | LeaseLock:
    """Return an advisory lock on PostgreSQL, a lease row anywhere else."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, holder, name)
    return LeaseLock(engine, holder, ttl, name)
