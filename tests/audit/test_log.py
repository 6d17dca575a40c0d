"""AuditLog behaviour that does not depend on the backend (run on SQLite in tmp_path)."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import SignedNote, verify_checkpoint
from audit.errors import CheckpointError, TreeSizeError
from audit.log import AuditLog, AuditUnavailable
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from audit.store import SQLiteAuditStore
from audit.verify import export_line
from tests.audit.store_conformance import GatedStore

ORIGIN = "audit.force-20.example/log"


class SteppingClock:
    """A test clock that moves one second per reading, so stored times are predictable."""

    def __init__(self) -> None:
        self.now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def gated(tmp_path: Path) -> GatedStore:
    return GatedStore(SQLiteAuditStore(tmp_path / "audit.db"))


@pytest.fixture
def log(gated: GatedStore, key: Ed25519PrivateKey) -> Iterator[AuditLog]:
    audit_log = AuditLog(
        gated, origin=ORIGIN, key_name="force-20", signing_key=key, clock=SteppingClock()
    )
    try:
        yield audit_log
    finally:
        gated.release.set()
        audit_log.close()


def test_entries_queued_during_a_commit_share_the_next_transaction(
    log: AuditLog, gated: GatedStore
) -> None:
    gated.hold_next_append()
    first = log.submit(b"first")
    assert gated.entered.wait(timeout=10)
    # The writer is inside a commit; everything submitted now must wait and be grouped.
    rest = [log.submit(f"queued-{i}".encode()) for i in range(50)]
    gated.release.set()
    assert first.result(timeout=10).index == 0
    assert [f.result(timeout=10).index for f in rest] == list(range(1, 51))
    assert gated.batch_sizes == [1, 50]


def test_batches_never_exceed_max_batch(gated: GatedStore, key: Ed25519PrivateKey) -> None:
    with AuditLog(gated, origin=ORIGIN, key_name="k", signing_key=key, max_batch=8) as log:
        gated.hold_next_append()
        first = log.submit(b"first")
        assert gated.entered.wait(timeout=10)
        rest = [log.submit(f"e{i}".encode()) for i in range(20)]
        gated.release.set()
        first.result(timeout=10)
        assert [f.result(timeout=10).index for f in rest] == list(range(1, 21))
    assert gated.batch_sizes == [1, 8, 8, 4]


def test_append_async_leaves_the_event_loop_running(log: AuditLog, gated: GatedStore) -> None:
    async def scenario() -> int:
        gated.hold_next_append()
        pending = asyncio.ensure_future(log.append_async(b"async entry"))
        # If append_async blocked the loop, this coroutine could never run to release the store.
        await asyncio.to_thread(gated.entered.wait, 10)
        gated.release.set()
        receipt = await asyncio.wait_for(pending, timeout=10)
        return receipt.index

    assert asyncio.run(scenario()) == 0
    assert log.entry(0) == b"async entry"


def test_async_append_cancelled_before_the_writer_takes_it_is_not_stored(
    log: AuditLog, gated: GatedStore
) -> None:
    async def scenario() -> None:
        gated.hold_next_append()
        blocker = asyncio.ensure_future(log.append_async(b"kept"))
        await asyncio.to_thread(gated.entered.wait, 10)
        withdrawn = asyncio.ensure_future(log.append_async(b"withdrawn"))
        await asyncio.sleep(0)  # let the task submit its entry
        withdrawn.cancel()
        # Once the task has finished cancelling, the writer's future has been cancelled too.
        with pytest.raises(asyncio.CancelledError):
            await withdrawn
        gated.release.set()
        await blocker

    asyncio.run(scenario())
    log.flush()
    assert log.size() == 1
    assert log.entries(0, 10) == [b"kept"]


def test_background_checkpointer_signs_while_entries_arrive(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    seen: list[SignedNote] = []
    reached = threading.Event()

    def on_checkpoint(note: SignedNote) -> None:
        seen.append(note)
        if verify_checkpoint(note.to_text(), ORIGIN, "k", key.public_key()).size >= 30:
            reached.set()

    log = AuditLog(
        SQLiteAuditStore(tmp_path / "audit.db"),
        origin=ORIGIN,
        key_name="k",
        signing_key=key,
        checkpoint_interval=0.02,
        on_checkpoint=on_checkpoint,
    )
    try:
        log.start()
        for i in range(30):
            log.append(f"e{i}".encode())
        assert reached.wait(timeout=10), "the checkpointer never signed the grown tree"
        log.append(b"last")
        final = log.stop()
        assert verify_checkpoint(final.to_text(), ORIGIN, "k", key.public_key()).size == 31
        latest = log.latest_checkpoint()
        assert latest is not None
        assert (latest.size, latest.note) == (31, final.to_text())
        assert len(log.store.checkpoints()) == len(seen)
    finally:
        log.close()


def test_checkpoint_records_the_clock_time(log: AuditLog, key: Ed25519PrivateKey) -> None:
    log.append(b"one")
    note = log.checkpoint()
    latest = log.latest_checkpoint()
    assert latest is not None
    assert latest.note == note.to_text()
    # The stepping clock was read once for the append and once for the checkpoint.
    assert latest.created_at == datetime(2025, 6, 1, 12, 0, 2, tzinfo=UTC)


def test_proofs_entries_and_range_errors(log: AuditLog, key: Ed25519PrivateKey) -> None:
    entries = [f"entry-{i}".encode() for i in range(21)]
    for entry in entries[:9]:
        log.append(entry)
    old = verify_checkpoint(log.checkpoint().to_text(), ORIGIN, "force-20", key.public_key())
    for entry in entries[9:]:
        log.append(entry)
    new = verify_checkpoint(log.checkpoint().to_text(), ORIGIN, "force-20", key.public_key())
    verify_consistency(9, 21, log.consistency_proof(9, 21), old.root_hash, new.root_hash)
    for index in (0, 8, 20):
        proof = log.inclusion_proof(index, 21)
        verify_inclusion(leaf_hash(entries[index]), index, 21, proof, new.root_hash)
    assert log.entry(20) == entries[20]
    assert log.entries(5, 8) == entries[5:8]
    assert log.root(9) == old.root_hash
    with pytest.raises(TreeSizeError):
        log.entry(21)
    with pytest.raises(TreeSizeError):
        log.entry(-1)
    with pytest.raises(TreeSizeError):
        log.inclusion_proof(3, 22)
    with pytest.raises(TreeSizeError):
        log.consistency_proof(9, 22)
    with pytest.raises(TreeSizeError):
        log.entries(4, 2)


def test_export_streams_one_line_per_entry_to_a_file_or_a_callback(log: AuditLog) -> None:
    entries = [f'{{"n":{i}}}'.encode() for i in range(2500)]
    for start in range(0, 2500, 500):
        futures = [log.submit(e) for e in entries[start : start + 500]]
        for future in futures:
            future.result(timeout=30)
    expected = b"".join(export_line(i, e) for i, e in enumerate(entries))

    buffer = io.BytesIO()
    progress: list[tuple[int, int]] = []
    assert log.export(buffer, lambda done, total: progress.append((done, total))) == 2500
    assert buffer.getvalue() == expected
    assert progress == [(1000, 2500), (2000, 2500), (2500, 2500)]

    chunks: list[bytes] = []
    assert log.export(chunks.append, start=10, end=12) == 12
    assert chunks == [export_line(10, entries[10]), export_line(11, entries[11])]


def test_close_drains_pending_appends_then_refuses_new_ones(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    path = tmp_path / "audit.db"
    log = AuditLog(SQLiteAuditStore(path), origin=ORIGIN, key_name="k", signing_key=key)
    futures = [log.submit(f"e{i}".encode()) for i in range(100)]
    log.close()
    assert [f.result(timeout=0).index for f in futures] == list(range(100))
    with pytest.raises(AuditUnavailable):
        log.append(b"too late")
    with pytest.raises(AuditUnavailable):
        asyncio.run(log.append_async(b"too late"))
    log.close()  # idempotent
    reopened = SQLiteAuditStore(path)
    try:
        assert reopened.size() == 100
    finally:
        reopened.close()


def test_close_with_a_running_checkpointer_signs_a_final_checkpoint(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    path = tmp_path / "audit.db"
    log = AuditLog(SQLiteAuditStore(path), origin=ORIGIN, key_name="k", signing_key=key)
    log.start()
    for i in range(5):
        log.submit(f"e{i}".encode())
    log.close()
    reopened = SQLiteAuditStore(path)
    try:
        latest = reopened.latest_checkpoint()
        assert latest is not None
        assert verify_checkpoint(latest.note, ORIGIN, "k", key.public_key()).size == 5
    finally:
        reopened.close()


def test_bad_configuration_is_refused_at_construction(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    store = SQLiteAuditStore(tmp_path / "audit.db")
    try:
        with pytest.raises(CheckpointError):
            AuditLog(store, origin="two\nlines", key_name="k", signing_key=key)
        with pytest.raises(ValueError):
            AuditLog(store, origin=ORIGIN, key_name="k", signing_key=key, max_batch=0)
        with pytest.raises(ValueError):
            store.append([b"x"], datetime(2025, 1, 1))  # naive time: ambiguous in an audit log
    finally:
        store.close()
