"""Durable storage for the audit log: the ``AuditStore`` contract and its SQLite and PostgreSQL
backends, each with idempotent schema creation and append-only triggers."""

from audit.store.base import (
    AUDIT_TABLES,
    AppendedLeaf,
    AuditStore,
    AuditStoreError,
    AuditUnavailable,
    StoredCheckpoint,
)
from audit.store.postgres import PostgresAuditStore
from audit.store.sqlite import SQLiteAuditStore

__all__ = [
    "AUDIT_TABLES",
    "AppendedLeaf",
    "AuditStore",
    "AuditStoreError",
    "AuditUnavailable",
    "PostgresAuditStore",
    "SQLiteAuditStore",
    "StoredCheckpoint",
]
