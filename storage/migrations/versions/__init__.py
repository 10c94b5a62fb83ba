"""Alembic revisions, oldest first: 0001 initial schema, 0002 score history and models."""
