"""Alembic migrations for the node's tables (one history for SQLite and PostgreSQL)."""
