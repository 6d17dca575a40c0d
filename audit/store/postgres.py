"""The PostgreSQL audit store: one log shared by every app replica of a node.

Several processes may append to the same database. Each append is one transaction that first takes
a transaction-level advisory lock, then reads the committed size, so appends are serialised and
indexes stay contiguous whichever replica writes. A writer's in-memory frontier is reused only when
nobody else appended since; otherwise it is rebuilt from the O(log n) stored frontier nodes.

A connection that fails (server restart, terminated backend) is dropped and the error raised, so
that batch fails closed; the next call opens a fresh connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from audit.merkle import Frontier
from audit.store.base import (
    AppendedLeaf,
    AuditStoreError,
    SignTreeHead,
    StoredCheckpoint,
    extend_frontier,
    require_aware,
)

__all__ = [
    "APPEND_LOCK_KEY",
    "SCHEMA_SQL",
    "SCHEMA_STATEMENTS",
    "PostgresAuditStore",
    "create_schema",
]

#: The advisory lock key that serialises appends (and schema creation) across processes.
APPEND_LOCK_KEY = 0x4155_4449_545F_4C47  # "AUDIT_LG"

_T = TypeVar("_T")


def _append_only_trigger(table: str) -> str:
    # Statement-level, so even an UPDATE or DELETE matching no rows is refused, and TRUNCATE
    # (which never fires row triggers) is caught too.
    return (
        f"CREATE OR REPLACE TRIGGER {table}_append_only "
        f"BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
    )


#: Idempotent DDL (PostgreSQL 14 or later), one statement each, for migrations to run in order.
SCHEMA_STATEMENTS: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS audit_entries (
        idx bigint PRIMARY KEY CHECK (idx >= 0),
        entry bytea NOT NULL,
        leaf_hash bytea NOT NULL CHECK (octet_length(leaf_hash) = 32),
        appended_at timestamptz NOT NULL
    )""",
    # Interior perfect nodes only: level 0 is audit_entries.leaf_hash, kept once.
    """CREATE TABLE IF NOT EXISTS audit_nodes (
        level smallint NOT NULL CHECK (level >= 1),
        idx bigint NOT NULL CHECK (idx >= 0),
        hash bytea NOT NULL CHECK (octet_length(hash) = 32),
        PRIMARY KEY (level, idx)
    )""",
    """CREATE TABLE IF NOT EXISTS audit_checkpoints (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        size bigint NOT NULL CHECK (size >= 0),
        note text NOT NULL,
        created_at timestamptz NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_checkpoints_by_size ON audit_checkpoints (size, id)",
    """CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit table % is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$""",
    *(
        _append_only_trigger(table)
        for table in ("audit_entries", "audit_nodes", "audit_checkpoints")
    ),
)

#: The same DDL as one script, for ``op.execute`` in an Alembic migration.
SCHEMA_SQL: str = ";\n".join(SCHEMA_STATEMENTS) + ";\n"


def create_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the audit tables, trigger function and triggers if absent, in one transaction.

    Takes the append lock first: concurrent ``CREATE ... IF NOT EXISTS`` from two replicas
    starting together can otherwise collide on the catalog."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK_KEY,))
        for statement in SCHEMA_STATEMENTS:
            conn.execute(statement.encode())


class PostgresAuditStore:
    """An ``AuditStore`` in a PostgreSQL database (see the module docstring for concurrency)."""

    def __init__(
        self, conninfo: str, *, lock_timeout_ms: int = 10_000, connect_timeout_s: int = 10
    ) -> None:
        self._conninfo = conninfo
        self._lock_timeout_ms = lock_timeout_ms
        self._connect_timeout_s = connect_timeout_s
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._closed = False
        self._writer: psycopg.Connection[Any] | None = None
        self._reader: psycopg.Connection[Any] | None = None
        self._frontier: Frontier | None = None
        with self._write_lock:
            create_schema(self._writer_conn())

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=self._connect_timeout_s
        )
        # A replica stuck holding the append lock must not hang every other replica forever.
        conn.execute(
            "SELECT set_config('lock_timeout', %s, false)", (f"{int(self._lock_timeout_ms)}ms",)
        )
        return conn

    def _writer_conn(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise psycopg.InterfaceError("the audit store is closed")
        if self._writer is None or self._writer.closed:
            self._writer = self._connect()
        return self._writer

    def _drop_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _read(self, work: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        with self._read_lock:
            try:
                return work(self._reader_conn())
            except psycopg.OperationalError:
                # Reads are idempotent, so one retry on a fresh connection hides a server restart
                # or a terminated backend from auditors; appends never retry (fail closed).
                self._drop_reader()
                return work(self._reader_conn())

    def _reader_conn(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise psycopg.InterfaceError("the audit store is closed")
        if self._reader is None or self._reader.closed:
            self._reader = self._connect()
        return self._reader

    def _drop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @staticmethod
    def _size(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM audit_entries").fetchone()
        assert row is not None
        return int(row[0])

    @staticmethod
    def _node(conn: psycopg.Connection[Any], level: int, index: int) -> bytes:
        if level == 0:
            row = conn.execute(
                "SELECT leaf_hash FROM audit_entries WHERE idx = %s", (index,)
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT hash FROM audit_nodes WHERE level = %s AND idx = %s", (level, index)
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
        stamp = require_aware(appended_at)
        with self._write_lock:
            conn = self._writer_conn()
            frontier = self._frontier
            self._frontier = None
            try:
                # Pipeline mode sends BEGIN, the lock and the size query in one round trip, and
                # the inserts with COMMIT in another, instead of one round trip per statement.
                with conn.pipeline(), conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK_KEY,))
                    size = self._size(conn)
                    if frontier is None or frontier.size != size:
                        frontier = Frontier.from_nodes(
                            size, lambda lv, ix: self._node(conn, lv, ix)
                        )
                    leaves, nodes = extend_frontier(frontier, entries)
                    # One round trip per table however large the batch: arrays unnested server-side.
                    conn.execute(
                        "INSERT INTO audit_entries (idx, entry, leaf_hash, appended_at) "
                        "SELECT i, e, h, %s FROM unnest(%s::bigint[], %s::bytea[], %s::bytea[]) "
                        "AS batch (i, e, h)",
                        (
                            stamp,
                            [leaf.index for leaf in leaves],
                            list(entries),
                            [leaf.leaf_hash for leaf in leaves],
                        ),
                    )
                    if nodes:
                        conn.execute(
                            "INSERT INTO audit_nodes (level, idx, hash) "
                            "SELECT * FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[])",
                            (
                                [level for level, _, _ in nodes],
                                [index for _, index, _ in nodes],
                                [value for _, _, value in nodes],
                            ),
                        )
                    if sign is not None:
                        # The tree head of this very transaction (the advisory lock is held).
                        note = sign(frontier.size, frontier.root())
                        conn.execute(
                            "INSERT INTO audit_checkpoints (size, note, created_at) "
                            "VALUES (%s, %s, %s)",
                            (frontier.size, note, stamp),
                        )
            except psycopg.Error:
                # Whatever failed, start the next append on a clean connection: a failed
                # pipeline can leave this one in an unknown state, and failures are rare.
                self._drop_writer()
                raise
            self._frontier = frontier
            return leaves

    def size(self) -> int:
        return self._read(self._size)

    def get_node(self, level: int, index: int) -> bytes:
        return self._read(lambda conn: self._node(conn, level, index))

    def read_rows(self, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT idx, entry, leaf_hash FROM audit_entries "
                "WHERE idx >= %s AND idx < %s ORDER BY idx",
                (start, end),
            ).fetchall()
        )
        return [(int(i), bytes(e), bytes(h)) for i, e, h in rows]

    def read_entries(self, start: int, end: int) -> list[bytes]:
        if start < 0 or end < start:
            raise ValueError(f"bad entry range [{start}, {end})")
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT idx, entry FROM audit_entries WHERE idx >= %s AND idx < %s ORDER BY idx",
                (start, end),
            ).fetchall()
        )
        for offset, (index, _) in enumerate(rows):
            if index != start + offset:
                raise AuditStoreError(f"audit entry {start + offset} is missing")
        return [bytes(entry) for _, entry in rows]

    def save_checkpoint(self, size: int, note: str, created_at: datetime) -> None:
        stamp = require_aware(created_at)
        with self._write_lock:
            conn = self._writer_conn()
            try:
                conn.execute(
                    "INSERT INTO audit_checkpoints (size, note, created_at) VALUES (%s, %s, %s)",
                    (size, note, stamp),
                )
            except psycopg.OperationalError:
                self._drop_writer()
                raise

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        row = self._read(
            lambda conn: conn.execute(
                "SELECT size, note, created_at FROM audit_checkpoints "
                "ORDER BY size DESC, id DESC LIMIT 1"
            ).fetchone()
        )
        if row is None:
            return None
        return StoredCheckpoint(int(row[0]), str(row[1]), row[2])

    def checkpoints(self, min_size: int = 0) -> list[StoredCheckpoint]:
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT size, note, created_at FROM audit_checkpoints WHERE size >= %s ORDER BY id",
                (min_size,),
            ).fetchall()
        )
        return [StoredCheckpoint(int(s), str(n), c) for s, n, c in rows]

    def frontier(self) -> Frontier:
        def rebuild(conn: psycopg.Connection[Any]) -> Frontier:
            size = self._size(conn)
            return Frontier.from_nodes(size, lambda lv, ix: self._node(conn, lv, ix))

        return self._read(rebuild)

    def close(self) -> None:
        with self._write_lock:
            self._closed = True
            self._drop_writer()
        with self._read_lock:
            self._drop_reader()
