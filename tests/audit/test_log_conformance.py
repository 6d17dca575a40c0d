"""AuditLog over every backend: group commit under many threads, fail closed, then recovery."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import verify_checkpoint
from audit.log import AuditLog, AuditUnavailable, Receipt
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.audit.store_conformance import (
    Backend,
    StoreSpec,
    assert_store_matches_naive_tree,
    backend_fixture,  # noqa: F401  (pytest fixture)
)

ORIGIN = "audit.example-force.police.uk/log"
THREADS = 8
PER_THREAD = 200


def _open_log(spec: StoreSpec, key: Ed25519PrivateKey) -> AuditLog:
    return AuditLog(spec.open(), origin=ORIGIN, key_name=ORIGIN, signing_key=key)


def test_many_threads_appending_make_one_consistent_log(backend: Backend) -> None:
    key = Ed25519PrivateKey.generate()
    log = _open_log(backend.spec, key)
    start = threading.Barrier(THREADS)

    def append_all(thread: int) -> list[tuple[bytes, Receipt]]:
        start.wait()
        out = []
        for n in range(PER_THREAD):
            entry = f'{{"thread":{thread},"n":{n}}}'.encode()
            out.append((entry, log.append(entry)))
        return out

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            results = [pair for chunk in pool.map(append_all, range(THREADS)) for pair in chunk]
        total = THREADS * PER_THREAD
        assert sorted(receipt.index for _, receipt in results) == list(range(total))
        stored = log.entries(0, total)
        for entry, receipt in results:
            assert receipt.origin == ORIGIN
            assert receipt.leaf_hash == leaf_hash(entry)
            assert stored[receipt.index] == entry
        assert_store_matches_naive_tree(log.store, stored)
        note = log.checkpoint()
        checkpoint = verify_checkpoint(note.to_text(), ORIGIN, ORIGIN, key.public_key())
        assert (checkpoint.size, checkpoint.root_hash) == (total, log.root())
    finally:
        log.close()


def test_failed_store_fails_every_waiter_closed_then_recovers(backend: Backend) -> None:
    spec = StoreSpec(backend.spec.kind, backend.spec.location, fast_fail=True)
    log = _open_log(spec, Ed25519PrivateKey.generate())
    try:
        kept = [log.append(f"before-{i}".encode()) for i in range(3)]
        backend.break_store()
        doomed = [log.submit(f"doomed-{i}".encode()) for i in range(5)]
        for future in doomed:
            with pytest.raises(AuditUnavailable):
                future.result(timeout=30)
        backend.heal_store()
        after = [log.append(f"after-{i}".encode()) for i in range(4)]
        after.append(asyncio.run(log.append_async(b"after-async")))
        assert [r.index for r in kept + after] == list(range(8))
        expected = [f"before-{i}".encode() for i in range(3)]
        expected += [f"after-{i}".encode() for i in range(4)] + [b"after-async"]
        assert_store_matches_naive_tree(log.store, expected)
    finally:
        log.close()


def test_checkpoints_and_proofs_survive_reopening_the_log(backend: Backend) -> None:
    key = Ed25519PrivateKey.generate()
    log = _open_log(backend.spec, key)
    try:
        for i in range(13):
            log.append(f"first-{i}".encode())
        first_note = log.checkpoint()
    finally:
        log.close()
    reopened = _open_log(backend.spec, key)
    try:
        latest = reopened.latest_checkpoint()
        assert latest is not None
        assert (latest.size, latest.note) == (13, first_note.to_text())
        old = verify_checkpoint(latest.note, ORIGIN, ORIGIN, key.public_key())
        receipt = reopened.append(b"after-restart")
        assert receipt.index == 13
        final = reopened.stop()
        new = verify_checkpoint(final.to_text(), ORIGIN, ORIGIN, key.public_key())
        assert new.size == 14
        verify_consistency(13, 14, reopened.consistency_proof(13, 14), old.root_hash, new.root_hash)
        verify_inclusion(
            leaf_hash(b"after-restart"), 13, 14, reopened.inclusion_proof(13, 14), new.root_hash
        )
    finally:
        reopened.close()
