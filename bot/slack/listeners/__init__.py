"""Bolt listeners, one package per kind; each exposes ``register(app, service)``."""
