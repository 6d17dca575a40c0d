"""The SQLite audit store: the embedded default, one durable file per node.

WAL journal with ``synchronous=FULL`` so a commit is on disk before ``append`` returns, and a busy
timeout so other processes sharing the file wait for the write lock instead of failing at once.
Appends take the write lock with ``BEGIN IMMEDIATE`` and read the size inside it, so several
processes appending to one file still produce one contiguous log.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime

from audit.merkle import Frontier
from audit.store.base import (
    AppendedLeaf,
    AuditStoreError,
    SignTreeHead,
    StoredCheckpoint,
    extend_frontier,
    require_aware,
)

__all__ = ["SCHEMA_STATEMENTS", "SQLiteAuditStore", "create_schema"]


def _append_only_triggers(table: str, key: str) -> list[str]:
    refuse = f"SELECT RAISE(ABORT, '{table} is append-only')"
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN {refuse}; END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN {refuse}; END",
        # INSERT OR REPLACE deletes the old row without firing DELETE triggers (unless the
        # connection enabled recursive_triggers), so an insert over an existing key is refused too.
        # Table and key are this module's constants, never input.
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table} "  # noqa: S608
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {key}) BEGIN {refuse}; END",
    ]


#: Idempotent DDL, one statement each, for the gateway's migrations to run in order.
SCHEMA_STATEMENTS: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS audit_entries (
        idx INTEGER PRIMARY KEY CHECK (idx >= 0),
        entry BLOB NOT NULL,
        leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32),
        appended_at TEXT NOT NULL
    )""",
    # Interior perfect nodes only: level 0 is audit_entries.leaf_hash, kept once.
    """CREATE TABLE IF NOT EXISTS audit_nodes (
        level INTEGER NOT NULL CHECK (level >= 1),
        idx INTEGER NOT NULL CHECK (idx >= 0),
        hash BLOB NOT NULL CHECK (length(hash) = 32),
        PRIMARY KEY (level, idx)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS audit_checkpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        size INTEGER NOT NULL CHECK (size >= 0),
        note TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_checkpoints_by_size ON audit_checkpoints (size, id)",
    *_append_only_triggers("audit_entries", "idx = NEW.idx"),
    *_append_only_triggers("audit_nodes", "level = NEW.level AND idx = NEW.idx"),
    *_append_only_triggers("audit_checkpoints", "id = NEW.id"),
)


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the audit tables and their append-only triggers if absent, in one transaction.

    Runs inside the caller's transaction if one is open (a migration), else in its own."""
    if conn.in_transaction:
        for statement in SCHEMA_STATEMENTS:
            conn.execute(statement)
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA_STATEMENTS:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


_ENTRY_INSERT = "INSERT INTO audit_entries (idx, entry, leaf_hash, appended_at) VALUES "
_NODE_INSERT = "INSERT INTO audit_nodes (level, idx, hash) VALUES "
# Rows per multi-row INSERT. Each statement is one sqlite3_step, and the sqlite3 module releases
# the GIL around every step: with executemany a batch would hand the GIL to waiting appender
# threads once per row and queue behind them each time (a lock convoy), which halved throughput.
_ROWS_PER_STATEMENT = 128


@functools.cache
def _multi_row(prefix: str, columns: int, rows: int) -> str:
    group = "(" + ", ".join("?" * columns) + ")"
    return prefix + ", ".join([group] * rows)


def _insert_rows(conn: sqlite3.Connection, prefix: str, rows: Sequence[tuple[object, ...]]) -> None:
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        conn.execute(
            _multi_row(prefix, len(chunk[0]), len(chunk)),
            [value for row in chunk for value in row],
        )


def _to_text(moment: datetime) -> str:
    return require_aware(moment).isoformat(timespec="microseconds")


class SQLiteAuditStore:
    """An ``AuditStore`` in one SQLite file (see the module docstring for durability settings)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000) -> None:
        self._path = os.fspath(path)
        self._busy_timeout_ms = busy_timeout_ms
        # One connection per role so readers (proofs, exports) are not queued behind a commit;
        # WAL lets them read the last committed state while a write is in progress.
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = self._connect()
        create_schema(self._writer)
        self._reader: sqlite3.Connection | None = self._connect()
        # The writer's frontier, trusted only while the stored size still equals its size.
        self._frontier: Frontier | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
            # Room for every multi-row INSERT shape (1.._ROWS_PER_STATEMENT rows, two tables).
            cached_statements=2 * _ROWS_PER_STATEMENT + 32,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        return conn

    def _writer_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            raise sqlite3.ProgrammingError("the audit store is closed")
        return self._writer

    def _reader_conn(self) -> sqlite3.Connection:
        if self._reader is None:
            raise sqlite3.ProgrammingError("the audit store is closed")
        return self._reader

    @staticmethod
    def _size(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM audit_entries").fetchone()
        return int(row[0])

    @staticmethod
    def _node(conn: sqlite3.Connection, level: int, index: int) -> bytes:
        if level == 0:
            row = conn.execute(
                "SELECT leaf_hash FROM audit_entries WHERE idx = ?", (index,)
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?", (level, index)
            ).fetchone()
        if row is None:
            raise KeyError((level, index))
        return bytes(row[0])

    def append(
        self,
        entries: Sequence[bytes],
        appended_at: datetime,
        sign: SignTreeHead | None = None,
    ) -> list[AppendedLeaf]:
        if not entries:
            return []
        stamp = _to_text(appended_at)
        with self._write_lock:
            conn = self._writer_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                size = self._size(conn)
                frontier = self._frontier
                self._frontier = None
                if frontier is None or frontier.size != size:
                    frontier = Frontier.from_nodes(size, lambda lv, ix: self._node(conn, lv, ix))
                leaves, nodes = extend_frontier(frontier, entries)
                entry_rows = [
                    (leaf.index, entry, leaf.leaf_hash, stamp)
                    for leaf, entry in zip(leaves, entries, strict=True)
                ]
                _insert_rows(conn, _ENTRY_INSERT, entry_rows)
                _insert_rows(conn, _NODE_INSERT, nodes)
                if sign is not None:
                    note = sign(frontier.size, frontier.root())
                    conn.execute(
                        "INSERT INTO audit_checkpoints (size, note, created_at) VALUES (?, ?, ?)",
                        (frontier.size, note, stamp),
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._frontier = frontier
            return leaves

    def size(self) -> int:
        with self._read_lock:
            return self._size(self._reader_conn())

    def get_node(self, level: int, index: int) -> bytes:
        with self._read_lock:
            return self._node(self._reader_conn(), level, index)

    def read_rows(self, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
        with self._read_lock:
            rows = (
                self._reader_conn()
                .execute(
                    "SELECT idx, entry, leaf_hash FROM audit_entries "
                    "WHERE idx >= ? AND idx < ? ORDER BY idx",
                    (start, end),
                )
                .fetchall()
            )
        return [(int(i), bytes(e), bytes(h)) for i, e, h in rows]

    def read_entries(self, start: int, end: int) -> list[bytes]:
        if start < 0 or end < start:
            raise ValueError(f"bad entry range [{start}, {end})")
        with self._read_lock:
            rows = (
                self._reader_conn()
                .execute(
                    "SELECT idx, entry FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                    (start, end),
                )
                .fetchall()
            )
        for offset, (index, _) in enumerate(rows):
            if index != start + offset:
                raise AuditStoreError(f"audit entry {start + offset} is missing")
        return [bytes(entry) for _, entry in rows]

    def save_checkpoint(self, size: int, note: str, created_at: datetime) -> None:
        stamp = _to_text(created_at)
        with self._write_lock:
            conn = self._writer_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO audit_checkpoints (size, note, created_at) VALUES (?, ?, ?)",
                    (size, note, stamp),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self._read_lock:
            row = (
                self._reader_conn()
                .execute(
                    "SELECT size, note, created_at FROM audit_checkpoints "
                    "ORDER BY size DESC, id DESC LIMIT 1"
                )
                .fetchone()
            )
        if row is None:
            return None
        return StoredCheckpoint(int(row[0]), str(row[1]), datetime.fromisoformat(row[2]))

    def checkpoints(self, min_size: int = 0) -> list[StoredCheckpoint]:
        with self._read_lock:
            rows = (
                self._reader_conn()
                .execute(
                    "SELECT size, note, created_at FROM audit_checkpoints WHERE size >= ? "
                    "ORDER BY id",
                    (min_size,),
                )
                .fetchall()
            )
        return [StoredCheckpoint(int(s), str(n), datetime.fromisoformat(c)) for s, n, c in rows]

    def frontier(self) -> Frontier:
        with self._read_lock:
            conn = self._reader_conn()
            # One read transaction so the size and the nodes come from the same snapshot.
            conn.execute("BEGIN")
            try:
                size = self._size(conn)
                return Frontier.from_nodes(size, lambda lv, ix: self._node(conn, lv, ix))
            finally:
                conn.execute("COMMIT")

    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
