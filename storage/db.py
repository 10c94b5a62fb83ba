"""Engines, sessions and schema migrations of the state store, from a database URL.

SQLite (the embedded default, ``sqlite:///gpu-risk.db``) gets WAL, foreign keys, a busy timeout
and ``BEGIN IMMEDIATE`` transactions (so two writers queue instead of failing half-way).
PostgreSQL (``postgresql+psycopg://user@host/db``) serves several replicas.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 10_000
MIGRATION_LOCK_KEY = 0x6770752D7269736B  # "gpu-risk": serialises concurrent upgrades
READ_ONLY_OPTION = "gpu_risk_read_only"
"""Execution option of read-only sessions: on SQLite they BEGIN deferred, so WAL readers never
wait for the writer."""


class DatabaseURLError(ValueError):
    """The database URL is malformed or names a driver gpu-risk does not support."""


def normalise_url(url: str | URL) -> URL:
    """Parse a URL; plain ``postgresql://`` becomes ``postgresql+psycopg://`` (psycopg 3)."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DatabaseURLError(
            f"GPU_RISK_DATABASE_URL {str(url)!r} is not a database URL: use "
            "sqlite:///gpu-risk.db or postgresql+psycopg://user:pass@host:5432/db"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseURLError(
            f"unsupported database {backend!r} in GPU_RISK_DATABASE_URL: use sqlite:///FILE "
            "or postgresql+psycopg://user:pass@host:5432/db"
        )
    return parsed


def make_engine(
    url: str | URL, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, **kwargs: Any
) -> Engine:
    """Create an engine for ``url`` with the SQLite pragmas or PostgreSQL settings applied."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """Install WAL, foreign keys, busy timeout and BEGIN IMMEDIATE on this engine's connections."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit BEGIN is deferred and late).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that later writes can fail
        # with SQLITE_BUSY at once (busy_timeout does not apply to lock upgrades). Read-only
        # sessions begin deferred: under WAL they read a snapshot without waiting for a writer.
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """Return a session factory (objects survive commit); ``read_only`` for sessions that never
    write (deferred BEGIN on SQLite)."""
    bind = engine.execution_options(**{READ_ONLY_OPTION: True}) if read_only else engine
    return sessionmaker(bind, expire_on_commit=False)


def alembic_config(url: str | URL | None = None) -> Config:
    """Return an Alembic config pointing at ``storage/migrations`` (and ``url`` when given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option(
            "sqlalchemy.url",
            normalise_url(url).render_as_string(hide_password=False).replace("%", "%%"),
        )
    return cfg


def upgrade(url: str | URL | Engine, revision: str = "head") -> None:
    """Migrate the database at ``url`` (or an engine) up to ``revision`` (default: head)."""
    _run(url, lambda cfg: command.upgrade(cfg, revision))


def downgrade(url: str | URL | Engine, revision: str) -> None:
    """Migrate the database down to ``revision`` (``base`` drops everything)."""
    _run(url, lambda cfg: command.downgrade(cfg, revision))


def current_revision(url: str | URL | Engine) -> str | None:
    """Return the database's Alembic revision, or None for an unmigrated database."""
    engine, owned = _engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def head_revision() -> str:
    """Return the newest revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships migrations
        raise RuntimeError("no Alembic migrations found in storage/migrations")
    return head


def _engine(url: str | URL | Engine) -> tuple[Engine, bool]:
    """Return an engine for ``url`` and whether the caller must dispose of it."""
    if isinstance(url, Engine):
        return url, False
    return make_engine(url), True


def _run(url: str | URL | Engine, action: Any) -> None:
    """Run an Alembic command on one connection of our configured engine."""
    engine, owned = _engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Replicas starting together migrate one after the other, not into each other.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            action(cfg)
    finally:
        if owned:
            engine.dispose()
