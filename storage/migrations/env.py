"""Alembic environment: migrate the connection handed in by ``storage.db`` (or the config URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from storage.db import make_engine
from storage.models import Base

target_metadata = Base.metadata


def _migrate(connection: Connection) -> None:
    """Run the migrations on one connection (batch mode on SQLite for ALTERs)."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the given connection, or open one from ``sqlalchemy.url``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: pass a connection or set sqlalchemy.url")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _migrate(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; use storage.db.upgrade")
run_migrations_online()
