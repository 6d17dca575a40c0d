"""Helpers for the audit store conformance suite: one description per backend, a naive tree to
compare stored nodes against, real faults to inject, and a worker for multi-process appends."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from audit.merkle import Frontier, leaf_hash, node_hash, root_at, root_from_leaves
from audit.store import (
    AppendedLeaf,
    AuditStore,
    PostgresAuditStore,
    SQLiteAuditStore,
    StoredCheckpoint,
)

FIXED_TIME = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class StoreSpec:
    """A picklable way to open a store, so spawned processes can open the same one."""

    kind: str  # "sqlite" or "postgres"
    location: str  # file path or connection URL
    fast_fail: bool = False

    def open(self) -> AuditStore:
        if self.kind == "sqlite":
            return SQLiteAuditStore(self.location, busy_timeout_ms=100 if self.fast_fail else 5000)
        return PostgresAuditStore(self.location, lock_timeout_ms=500 if self.fast_fail else 10_000)


@dataclass
class Backend:
    """One backend under test, with ways to reach its database behind the store's back."""

    spec: StoreSpec
    db_error: type[Exception]
    _fault: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.kind

    def open(self) -> AuditStore:
        return self.spec.open()

    def execute(self, sql: str) -> None:
        """Run one statement on a separate connection, as a database administrator would."""
        if self.spec.kind == "sqlite":
            conn = sqlite3.connect(self.spec.location, isolation_level=None)
            try:
                conn.execute(sql)
            finally:
                conn.close()
        else:
            with psycopg.connect(self.spec.location, autocommit=True) as pg:
                pg.execute(sql.encode())

    def break_store(self) -> None:
        """Make the store's next append fail for real (not a fake)."""
        if self.spec.kind == "sqlite":
            # Another connection holds the write lock; the store's busy timeout runs out.
            holder = sqlite3.connect(self.spec.location, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            self._fault = holder.close  # closing ends the transaction and frees the lock
        else:
            # Kill the store's server connections, as a failover or an admin would.
            with psycopg.connect(self.spec.location, autocommit=True) as pg:
                pg.execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            self._fault = None

    def heal_store(self) -> None:
        if self._fault is not None:
            self._fault()
            self._fault = None


def naive_levels(entries: Sequence[bytes]) -> list[list[bytes]]:
    """Every perfect node of the tree over ``entries``, level by level, hashed from scratch."""
    levels = [[leaf_hash(entry) for entry in entries]]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return levels


def assert_store_matches_naive_tree(store: AuditStore, expected: Sequence[bytes]) -> None:
    """The store holds exactly ``expected`` (in order), every perfect node it should, and its
    roots for every prefix size agree with the RFC definition."""
    size = store.size()
    assert size == len(expected)
    assert store.read_entries(0, size) == list(expected)
    levels = naive_levels(expected)
    for level, hashes in enumerate(levels):
        for index, value in enumerate(hashes):
            assert store.get_node(level, index) == value, (level, index)
    leaves = levels[0]
    checked = {size, 1, 2, 3, *range(max(size - 5, 0), size + 1)}
    for prefix in sorted(s for s in checked if s <= size):
        assert root_at(prefix, store.get_node) == root_from_leaves(leaves[:prefix])


def append_from_process(spec: StoreSpec, tag: str, batches: list[int], barrier: object) -> None:
    """Spawned-process worker: append ``tag``-labelled entries in the given batch sizes."""
    store = spec.open()
    try:
        barrier.wait()  # type: ignore[attr-defined]
        counter = 0
        for count in batches:
            batch = [f"{tag}-{counter + i:05d}".encode() for i in range(count)]
            counter += count
            store.append(batch, FIXED_TIME)
    finally:
        store.close()


@pytest.fixture(
    name="backend", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def backend_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each conformance test runs once per backend: SQLite in tmp_path, PostgreSQL in a fresh
    database (skipped locally when the server is absent, a failure under CI)."""
    if request.param == "sqlite":
        backend = Backend(StoreSpec("sqlite", str(tmp_path / "audit.db")), sqlite3.DatabaseError)
    else:
        backend = Backend(
            StoreSpec("postgres", request.getfixturevalue("pg_database")), psycopg.Error
        )
    try:
        yield backend
    finally:
        backend.heal_store()


class GatedStore:
    """A real store whose next append can be held at the door, to make group commit observable
    deterministically. Everything is delegated; nothing is faked."""

    def __init__(self, inner: AuditStore) -> None:
        self.inner = inner
        self.batch_sizes: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def hold_next_append(self) -> None:
        self.entered.clear()
        self.release.clear()

    def append(self, entries: Sequence[bytes], appended_at: datetime) -> list[AppendedLeaf]:
        self.entered.set()
        assert self.release.wait(timeout=30), "the test never released the gated append"
        self.batch_sizes.append(len(entries))
        return self.inner.append(entries, appended_at)

    def size(self) -> int:
        return self.inner.size()

    def get_node(self, level: int, index: int) -> bytes:
        return self.inner.get_node(level, index)

    def read_entries(self, start: int, end: int) -> list[bytes]:
        return self.inner.read_entries(start, end)

    def read_rows(self, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
        return self.inner.read_rows(start, end)

    def save_checkpoint(self, size: int, note: str, created_at: datetime) -> None:
        self.inner.save_checkpoint(size, note, created_at)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        return self.inner.latest_checkpoint()

    def checkpoints(self, min_size: int = 0) -> list[StoredCheckpoint]:
        return self.inner.checkpoints(min_size)

    def frontier(self) -> Frontier:
        return self.inner.frontier()

    def close(self) -> None:
        self.inner.close()
