"""The audit store contract, run against every backend (Trillian's storage/testonly pattern)."""

from __future__ import annotations

import itertools
import multiprocessing
import random
from datetime import timedelta

import pytest

from audit.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_at,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)
from audit.store import AuditStore
from tests.audit.store_conformance import (
    FIXED_TIME,
    Backend,
    StoreSpec,
    append_from_process,
    assert_store_matches_naive_tree,
    backend_fixture,  # noqa: F401  (pytest fixture)
)


def _entries(count: int, start: int = 0) -> list[bytes]:
    return [f'{{"event":"consult","n":{start + i}}}'.encode() for i in range(count)]


def _append_in_batches(store: AuditStore, entries: list[bytes], seed: int = 7) -> None:
    rng = random.Random(seed)
    position = 0
    while position < len(entries):
        step = rng.randint(1, 9)
        store.append(entries[position : position + step], FIXED_TIME)
        position += step


def test_empty_store_has_size_zero_and_the_empty_root(backend: Backend) -> None:
    store = backend.open()
    try:
        assert store.size() == 0
        assert store.read_entries(0, 10) == []
        assert store.frontier().size == 0
        assert store.frontier().root() == EMPTY_ROOT
        assert store.latest_checkpoint() is None
        with pytest.raises(KeyError):
            store.get_node(0, 0)
    finally:
        store.close()


def test_append_assigns_contiguous_indexes_and_returns_leaf_hashes(backend: Backend) -> None:
    store = backend.open()
    try:
        first = store.append(_entries(3), FIXED_TIME)
        second = store.append(_entries(2, start=3), FIXED_TIME)
        assert [leaf.index for leaf in first + second] == [0, 1, 2, 3, 4]
        assert [leaf.leaf_hash for leaf in first + second] == [leaf_hash(e) for e in _entries(5)]
        assert store.append([], FIXED_TIME) == []
        assert store.size() == 5
        assert store.read_entries(1, 4) == _entries(5)[1:4]
        assert store.read_entries(3, 100) == _entries(5)[3:]
    finally:
        store.close()


def test_stored_nodes_and_roots_match_a_naive_recomputation(backend: Backend) -> None:
    entries = _entries(77)
    store = backend.open()
    try:
        _append_in_batches(store, entries)
        assert_store_matches_naive_tree(store, entries)
        assert store.frontier().root() == root_from_leaves([leaf_hash(e) for e in entries])
    finally:
        store.close()


def test_proofs_from_stored_nodes_verify(backend: Backend) -> None:
    entries = _entries(37)
    store = backend.open()
    try:
        _append_in_batches(store, entries)
        sizes = [1, 2, 5, 8, 16, 21, 37]
        roots = {size: root_at(size, store.get_node) for size in sizes}
        for size in sizes:
            for index in range(size):
                proof = inclusion_proof(index, size, store.get_node)
                verify_inclusion(leaf_hash(entries[index]), index, size, proof, roots[size])
        for old in sizes:
            for new in sizes:
                if old <= new:
                    proof = consistency_proof(old, new, store.get_node)
                    verify_consistency(old, new, proof, roots[old], roots[new])
    finally:
        store.close()


def test_checkpoints_persist_across_reopening(backend: Backend) -> None:
    store = backend.open()
    try:
        store.append(_entries(4), FIXED_TIME)
        store.save_checkpoint(4, "note at four\n", FIXED_TIME)
        store.save_checkpoint(2, "late note at two\n", FIXED_TIME + timedelta(seconds=1))
        store.save_checkpoint(4, "second note at four\n", FIXED_TIME + timedelta(seconds=2))
    finally:
        store.close()
    reopened = backend.open()
    try:
        latest = reopened.latest_checkpoint()
        assert latest is not None
        assert (latest.size, latest.note) == (4, "second note at four\n")
        assert latest.created_at == FIXED_TIME + timedelta(seconds=2)
        assert [c.note for c in reopened.checkpoints()] == [
            "note at four\n",
            "late note at two\n",
            "second note at four\n",
        ]
        assert [c.size for c in reopened.checkpoints(min_size=3)] == [4, 4]
    finally:
        reopened.close()


def test_reopened_store_resumes_the_same_tree(backend: Backend) -> None:
    entries = _entries(45)
    store = backend.open()
    try:
        _append_in_batches(store, entries[:19])
        root_19 = root_at(19, store.get_node)
    finally:
        store.close()
    reopened = backend.open()
    try:
        frontier = reopened.frontier()
        assert frontier.size == 19
        assert frontier.root() == root_19
        leaves = reopened.append(entries[19:], FIXED_TIME)
        assert leaves[0].index == 19
        assert_store_matches_naive_tree(reopened, entries)
        verify_consistency(
            19,
            45,
            consistency_proof(19, 45, reopened.get_node),
            root_19,
            reopened.frontier().root(),
        )
    finally:
        reopened.close()


def test_schema_creation_is_idempotent(backend: Backend) -> None:
    backend.open().close()
    store = backend.open()  # runs create_schema again over existing tables and triggers
    try:
        store.append(_entries(1), FIXED_TIME)
        assert store.size() == 1
    finally:
        store.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET entry = X'00' WHERE idx = 0",
        "DELETE FROM audit_entries WHERE idx = 2",
        "UPDATE audit_nodes SET hash = leaf_hash_placeholder",
        "DELETE FROM audit_nodes",
        "UPDATE audit_checkpoints SET note = 'forged'",
        "DELETE FROM audit_checkpoints",
    ],
)
def test_database_refuses_changes_to_audit_tables(backend: Backend, statement: str) -> None:
    store = backend.open()
    try:
        store.append(_entries(3), FIXED_TIME)
        store.save_checkpoint(3, "a note\n", FIXED_TIME)
        before_entries = store.read_entries(0, 3)
        before_node = store.get_node(1, 0)
        before_checkpoint = store.latest_checkpoint()
        zero_hash = "X'" + "00" * 32 + "'" if backend.name == "sqlite" else "'\\x" + "00" * 32 + "'"
        sql = statement.replace("leaf_hash_placeholder", zero_hash)
        if backend.name == "postgres":
            sql = sql.replace("X'00'", "'\\x00'::bytea")
        with pytest.raises(backend.db_error, match="append-only"):
            backend.execute(sql)
        assert store.read_entries(0, 3) == before_entries
        assert store.get_node(1, 0) == before_node
        assert store.latest_checkpoint() == before_checkpoint
    finally:
        store.close()


def test_database_refuses_overwriting_an_entry_by_insert(backend: Backend) -> None:
    store = backend.open()
    try:
        store.append(_entries(2), FIXED_TIME)
        if backend.name == "sqlite":
            sql = (
                "INSERT OR REPLACE INTO audit_entries (idx, entry, leaf_hash, appended_at) "
                "VALUES (0, X'00', zeroblob(32), '2025-01-01')"
            )
            match = "append-only"
        else:
            sql = (
                "INSERT INTO audit_entries (idx, entry, leaf_hash, appended_at) "
                "VALUES (0, '\\x00', decode(repeat('00', 32), 'hex'), now()) "
                "ON CONFLICT (idx) DO UPDATE SET entry = excluded.entry"
            )
            match = "append-only"
        with pytest.raises(backend.db_error, match=match):
            backend.execute(sql)
        assert store.read_entries(0, 2) == _entries(2)
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_refuses_truncate(pg_database: str) -> None:
    backend = Backend(StoreSpec("postgres", pg_database), Exception)
    store = backend.open()
    try:
        store.append(_entries(2), FIXED_TIME)
        for table in ("audit_entries", "audit_nodes", "audit_checkpoints"):
            with pytest.raises(Exception, match="append-only"):
                backend.execute(f"TRUNCATE {table}")
        assert store.size() == 2
    finally:
        store.close()


def test_failed_append_stores_nothing_and_the_store_recovers(backend: Backend) -> None:
    spec = StoreSpec(backend.spec.kind, backend.spec.location, fast_fail=True)
    store = spec.open()
    try:
        store.append(_entries(3), FIXED_TIME)
        backend.break_store()
        with pytest.raises(backend.db_error):
            store.append(_entries(2, start=100), FIXED_TIME)
        backend.heal_store()
        leaves = store.append(_entries(4, start=3), FIXED_TIME)
        assert [leaf.index for leaf in leaves] == [3, 4, 5, 6]
        assert_store_matches_naive_tree(store, _entries(7))
    finally:
        store.close()


def test_two_processes_appending_concurrently_make_one_consistent_log(backend: Backend) -> None:
    backend.open().close()  # schema in place before the race starts
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    rng = random.Random(11)
    plans = {tag: [rng.randint(1, 6) for _ in range(250)] for tag in ("alpha", "bravo")}
    workers = [
        context.Process(target=append_from_process, args=(backend.spec, tag, plan, barrier))
        for tag, plan in plans.items()
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    store = backend.open()
    try:
        entries = store.read_entries(0, store.size())
        assert len(entries) == len(set(entries)) == sum(sum(p) for p in plans.values())
        for tag, plan in plans.items():
            mine = [e for e in entries if e.startswith(tag.encode())]
            # Each process's entries all landed, once each, in the order it appended them.
            assert mine == [f"{tag}-{i:05d}".encode() for i in range(sum(plan))]
        interleaved = [e.split(b"-")[0] for e in entries]
        switches = sum(1 for a, b in itertools.pairwise(interleaved) if a != b)
        if backend.name == "postgres":
            # SQLite's busy handler backs off for milliseconds, so one writer may starve the
            # other there; PostgreSQL queues lock waiters, so its writers must interleave.
            assert switches > 1, "the two writers never interleaved; the test proved nothing"
        assert_store_matches_naive_tree(store, entries)
    finally:
        store.close()
