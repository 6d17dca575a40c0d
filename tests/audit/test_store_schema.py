"""Schema creation as the gateway's migrations will run it, and the SQLite durability settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from audit.store import PostgresAuditStore, SQLiteAuditStore
from audit.store import postgres as pg_schema
from audit.store import sqlite as sqlite_schema
from tests.audit.store_conformance import FIXED_TIME


def _sqlite_objects(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    rows = conn.execute("SELECT type, name FROM sqlite_master WHERE name LIKE 'audit_%'")
    return {(str(kind), str(name)) for kind, name in rows}


def test_sqlite_store_uses_wal_journal(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    SQLiteAuditStore(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_sqlite_schema_runs_inside_a_migration_transaction(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    try:
        conn.execute("BEGIN")
        sqlite_schema.create_schema(conn)
        conn.execute("ROLLBACK")  # the migration's transaction owns the DDL
        assert _sqlite_objects(conn) == set()
        sqlite_schema.create_schema(conn)
        sqlite_schema.create_schema(conn)
        objects = _sqlite_objects(conn)
        assert {name for kind, name in objects if kind == "table"} == {
            "audit_entries",
            "audit_nodes",
            "audit_checkpoints",
        }
        assert sum(1 for kind, _ in objects if kind == "trigger") == 9
    finally:
        conn.close()


@pytest.mark.postgres
def test_postgres_schema_script_runs_as_one_migration_step(pg_database: str) -> None:
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(pg_schema.SCHEMA_SQL.encode())
        conn.execute(pg_schema.SCHEMA_SQL.encode())  # idempotent
        triggers = conn.execute(
            "SELECT event_object_table, string_agg(event_manipulation, ',' ORDER BY "
            "event_manipulation) FROM information_schema.triggers "
            "WHERE event_object_table LIKE 'audit_%' GROUP BY event_object_table"
        ).fetchall()
    # information_schema lists UPDATE and DELETE (TRUNCATE triggers are not shown there).
    assert sorted(triggers) == [
        ("audit_checkpoints", "DELETE,UPDATE"),
        ("audit_entries", "DELETE,UPDATE"),
        ("audit_nodes", "DELETE,UPDATE"),
    ]
    store = PostgresAuditStore(pg_database)
    try:
        assert store.append([b"{}"], FIXED_TIME)[0].index == 0
    finally:
        store.close()
