"""Alembic migrations of the state store (run through storage.db.upgrade)."""
