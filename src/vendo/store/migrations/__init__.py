"""Alembic migrations of the store (run by :func:`vendo.store.engine.upgrade`)."""
