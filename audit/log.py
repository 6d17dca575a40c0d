"""The node's audit log service: group-committed appends, signed checkpoints, proofs and export.

``AuditLog`` sits between the gateway and an ``AuditStore``. Callers hand it canonical entry bytes
and get a ``Receipt`` back only once the entry is durable; one writer thread batches everything
queued into one store transaction, so many concurrent requests cost one commit. If a commit fails
every waiter of that batch gets ``AuditUnavailable`` and must not disclose (fail closed); the
writer carries on and later batches succeed once the store recovers.

A background checkpointer signs the tree head at least once a second while entries arrive.
Roots, proofs and exports are computed from the store's perfect nodes, so any replica sharing the
database serves the same answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, Final, cast

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import merkle
from audit.checkpoint import Checkpoint, SignedNote, sign_checkpoint
from audit.errors import TreeSizeError
from audit.store.base import AppendedLeaf, AuditStore, AuditUnavailable, StoredCheckpoint
from audit.verify import export_line

__all__ = ["AuditLog", "AuditUnavailable", "Receipt"]

_log = structlog.get_logger(__name__)

#: Default largest batch the writer commits in one transaction.
DEFAULT_MAX_BATCH: Final = 1024
#: Default seconds between background checkpoints while entries arrive (the target is <= 1 s).
DEFAULT_CHECKPOINT_INTERVAL: Final = 0.5
_EXPORT_CHUNK: Final = 1000
#: Most GIL yields the writer makes waiting for woken callers to re-submit before a commit.
_MAX_LINGER_YIELDS: Final = 32


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof of a durable append: where the entry sits in which log, and its leaf hash.

    ``checkpoint`` is a signed checkpoint note whose tree includes the entry, when the append
    asked for one (``append_async(..., checkpoint=True)``); otherwise None."""

    index: int
    leaf_hash: bytes
    origin: str
    checkpoint: str | None = None


class _Stop:
    """Queue marker telling the writer to finish what it holds and exit."""


_STOP: Final = _Stop()


class _Waiter:
    """A caller blocked in ``append`` or ``flush`` (entry None: a flush marker, settled once
    everything queued before it is done). It waits on a pre-acquired lock that the writer
    releases: the cheapest wake-up the stdlib has, which matters when thousands of callers a
    second each need one (a Future or Condition costs several allocations and locks more)."""

    __slots__ = ("_done", "entry", "error", "receipt", "settled")

    def __init__(self, entry: bytes | None) -> None:
        self.entry = entry
        self.receipt: Receipt | None = None
        self.error: BaseException | None = None
        self.settled = False
        self._done = threading.Lock()
        self._done.acquire()

    def claim(self) -> bool:
        return True

    def settle(self, receipt: Receipt | None, error: BaseException | None) -> None:
        self.receipt, self.error, self.settled = receipt, error, True
        self._done.release()

    def wait(self) -> Receipt | None:
        self._done.acquire()
        if self.error is not None:
            raise self.error
        return self.receipt


class _FutureWaiter:
    """An entry submitted without blocking (``submit``, ``append_async``): settles a Future."""

    __slots__ = ("entry", "future", "settled")

    def __init__(self, entry: bytes, future: Future[Receipt]) -> None:
        self.entry: bytes | None = entry
        self.future = future
        self.settled = False

    def claim(self) -> bool:
        # False when an async caller was cancelled before the writer got here: drop the entry.
        return self.future.set_running_or_notify_cancel()

    def settle(self, receipt: Receipt | None, error: BaseException | None) -> None:
        self.settled = True
        if error is not None:
            self.future.set_exception(error)
        else:
            assert receipt is not None
            self.future.set_result(receipt)


class _AsyncWaiter:
    """An ``append_async`` caller, awaiting an asyncio future on its own loop. The writer
    settles all of a batch's async waiters with one ``call_soon_threadsafe`` per loop, rather
    than one cross-thread wake-up per entry (what ``asyncio.wrap_future`` would cost).

    ``wants_checkpoint``: the caller needs a signed checkpoint covering its entry in its receipt
    (signed once per batch, stored in the batch's own transaction)."""

    __slots__ = ("entry", "future", "loop", "settled", "wants_checkpoint")

    def __init__(
        self,
        entry: bytes,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Receipt],
        wants_checkpoint: bool = False,
    ) -> None:
        self.entry: bytes | None = entry
        self.loop = loop
        self.future = future
        self.settled = False
        self.wants_checkpoint = wants_checkpoint

    def claim(self) -> bool:
        # Read from the writer thread: one attribute read, atomic under the GIL. A task
        # cancelled before this point withdraws its entry; after it, the entry is stored anyway.
        return not self.future.cancelled()

    def settle(self, receipt: Receipt | None, error: BaseException | None) -> None:
        """Runs on the waiter's loop (see ``_settle_on_loops``)."""
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            assert receipt is not None
            self.future.set_result(receipt)


_Pending = _Waiter | _FutureWaiter | _AsyncWaiter
_Outcome = tuple[_Pending, Receipt | None, BaseException | None]


def _settle_all(outcomes: list[_Outcome]) -> None:
    for pending, receipt, error in outcomes:
        pending.settle(receipt, error)


def _deliver(outcomes: list[_Outcome]) -> None:
    """Settle every waiter: threads directly, asyncio futures in one hop per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        pending = outcome[0]
        pending.settled = True
        if isinstance(pending, _AsyncWaiter):
            by_loop.setdefault(pending.loop, []).append(outcome)
        else:
            pending.settle(outcome[1], outcome[2])
    for loop, on_loop in by_loop.items():
        # A closed loop has nobody left waiting on it.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_all, on_loop)


def _takes_sign(store: AuditStore) -> bool:
    """Whether the store's ``append`` can sign and store a checkpoint in its own transaction."""
    try:
        return "sign" in inspect.signature(store.append).parameters
    except (TypeError, ValueError):
        return False


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """One node's Merkle audit log over an ``AuditStore``, which it owns and closes."""

    def __init__(
        self,
        store: AuditStore,
        *,
        origin: str,
        key_name: str,
        signing_key: Ed25519PrivateKey,
        clock: Callable[[], datetime] | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
        on_checkpoint: Callable[[SignedNote], object] | None = None,
    ) -> None:
        """``on_checkpoint`` is called with each newly stored checkpoint (e.g. to send it to
        witnesses); it runs on the signing thread and its failures are logged, not raised."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        # Fail at start-up, not at the first checkpoint, if the origin cannot head a checkpoint.
        Checkpoint(origin, 0, merkle.EMPTY_ROOT)
        self._on_checkpoint = on_checkpoint
        self._store = store
        self._store_signs = _takes_sign(store)
        self._origin = origin
        self._key_name = key_name
        self._signing_key = signing_key
        self._clock = clock or _utc_now
        self._max_batch = max_batch
        self._checkpoint_interval = checkpoint_interval
        self._queue: queue.SimpleQueue[_Pending | _Stop] = queue.SimpleQueue()
        # Held while checking ``_closed`` and enqueuing, so nothing lands behind the stop marker.
        self._admission = threading.Lock()
        self._closed = False
        self._closing = False
        self._writer = threading.Thread(
            target=self._write_batches, name="audit-writer", daemon=True
        )
        self._writer.start()
        self._checkpoint_lock = threading.Lock()
        self._checkpointer: threading.Thread | None = None
        self._checkpointer_stop = threading.Event()
        self._signed_size = -1

    @property
    def origin(self) -> str:
        """The log's origin line, as in its checkpoints and receipts."""
        return self._origin

    @property
    def store(self) -> AuditStore:
        """The store this log owns (for read-only use such as health checks)."""
        return self._store

    # -- appends ---------------------------------------------------------------------------------

    def _enqueue(self, item: _Pending) -> None:
        with self._admission:
            if self._closed:
                raise AuditUnavailable("the audit log is closed")
            self._queue.put(item)

    def submit(self, entry: bytes) -> Future[Receipt]:
        """Queue one entry without waiting; the future resolves to its ``Receipt`` once durable,
        or fails with ``AuditUnavailable``. Thread-safe."""
        future: Future[Receipt] = Future()
        self._enqueue(_FutureWaiter(bytes(entry), future))
        return future

    def append(self, entry: bytes) -> Receipt:
        """Append one entry and block until it is durable. Thread-safe.

        Raises ``AuditUnavailable`` if it could not be stored: the caller must not go ahead."""
        waiter = _Waiter(bytes(entry))
        self._enqueue(waiter)
        receipt = waiter.wait()
        assert receipt is not None
        return receipt

    async def append_async(self, entry: bytes, *, checkpoint: bool = False) -> Receipt:
        """``append`` for asyncio callers: waits for durability without blocking the loop.

        With ``checkpoint=True`` the receipt also carries a signed checkpoint note whose tree
        includes the entry: the writer signs the tree head once for the whole batch and stores
        that checkpoint in the batch's own transaction (no second commit, no second signing per
        caller). Cancelling the awaiting task before the writer takes the entry withdraws it;
        after that the entry is stored regardless."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt] = loop.create_future()
        self._enqueue(_AsyncWaiter(bytes(entry), loop, future, checkpoint))
        return await future

    def flush(self) -> None:
        """Block until every entry submitted before this call has been committed or failed."""
        marker = _Waiter(None)
        self._enqueue(marker)
        marker.wait()

    def _write_batches(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            self._linger_while_queue_grows()
            batch: list[_Pending] = []
            entry_count = 0
            # Take whatever else is already queued, up to the batch limit: that is the group.
            while True:
                if isinstance(item, _Stop):
                    stopping = True
                    break
                batch.append(item)
                entry_count += item.entry is not None
                if entry_count >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            try:
                self._commit(batch)
            except Exception as exc:
                # A bug here must not strand waiters or kill the only writer.
                _log.error("audit.writer_failed", error_type=type(exc).__name__)
                _deliver(
                    [
                        (pending, None, AuditUnavailable("the audit writer failed"))
                        for pending in batch
                        if not pending.settled
                    ]
                )

    def _linger_while_queue_grows(self) -> None:
        # Callers woken by the last commit are runnable but waiting for the GIL, so without this
        # the writer grabs only half of them and every batch is half as big as it could be.
        # Yielding the GIL until the queue stops growing lets them re-submit first: PostgreSQL's
        # commit_delay idea, but adaptive and with no timer, so a lone caller pays one yield.
        seen = self._queue.qsize()
        for _ in range(_MAX_LINGER_YIELDS):
            time.sleep(0)
            now = self._queue.qsize()
            if now == seen or now >= self._max_batch:
                return
            seen = now

    def _commit(self, batch: list[_Pending]) -> None:
        entries: list[bytes] = []
        waiting: list[_Pending] = []
        markers: list[_Pending] = []
        for pending in batch:
            if not pending.claim():
                pending.settled = True
            elif pending.entry is None:
                markers.append(pending)
            else:
                entries.append(pending.entry)
                waiting.append(pending)
        outcomes: list[_Outcome] = []
        if entries:
            wants_checkpoint = any(
                isinstance(pending, _AsyncWaiter) and pending.wants_checkpoint
                for pending in waiting
            )
            note: str | None = None
            try:
                if wants_checkpoint:
                    leaves, note = self._append_signed(entries)
                else:
                    leaves = self._store.append(entries, self._clock())
            except Exception as exc:
                _log.warning(
                    "audit.batch_failed", batch_size=len(entries), error_type=type(exc).__name__
                )
                for pending in waiting:
                    # One exception per waiter: each is raised, with its traceback, in its thread.
                    failure = AuditUnavailable("the audit entry could not be made durable")
                    failure.__cause__ = exc
                    outcomes.append((pending, None, failure))
            else:
                origin = self._origin
                outcomes.extend(
                    (
                        pending,
                        Receipt(
                            leaf.index,
                            leaf.leaf_hash,
                            origin,
                            note
                            if isinstance(pending, _AsyncWaiter) and pending.wants_checkpoint
                            else None,
                        ),
                        None,
                    )
                    for pending, leaf in zip(waiting, leaves, strict=True)
                )
        outcomes.extend((pending, None, None) for pending in markers)
        _deliver(outcomes)

    def _append_signed(self, entries: list[bytes]) -> tuple[list[AppendedLeaf], str]:
        """Append a batch and sign the tree head that includes it, in the append's own store
        transaction when the store can (its ``append`` takes ``sign``), else append, then sign and
        store a checkpoint."""
        if not self._store_signs:
            leaves = self._store.append(entries, self._clock())
            return leaves, self.checkpoint().to_text()
        signed: list[SignedNote] = []

        def sign(size: int, root: bytes) -> str:
            note = sign_checkpoint(
                Checkpoint(self._origin, size, root), self._key_name, self._signing_key
            )
            signed.append(note)
            return note.to_text()

        leaves = self._store.append(entries, self._clock(), sign=sign)
        if not signed:
            raise AuditUnavailable("the store signed no checkpoint for the batch")
        note = signed[-1]
        self._signed_size = max(self._signed_size, leaves[-1].index + 1)
        if self._on_checkpoint is not None:
            try:
                self._on_checkpoint(note)
            except Exception as exc:
                _log.warning("audit.checkpoint_listener_failed", error_type=type(exc).__name__)
        return leaves, note.to_text()

    # -- checkpoints -----------------------------------------------------------------------------

    def checkpoint(self) -> SignedNote:
        """Sign the current tree head now, store the note and return it."""
        with self._checkpoint_lock:
            try:
                size = self._store.size()
                root = merkle.root_at(size, self._store.get_node)
                note = sign_checkpoint(
                    Checkpoint(self._origin, size, root), self._key_name, self._signing_key
                )
                self._store.save_checkpoint(size, note.to_text(), self._clock())
            except Exception as exc:
                _log.warning("audit.checkpoint_failed", error_type=type(exc).__name__)
                raise AuditUnavailable("the checkpoint could not be signed and stored") from exc
            self._signed_size = size
            _log.debug("audit.checkpoint_signed", origin=self._origin, size=size)
        if self._on_checkpoint is not None:
            try:
                self._on_checkpoint(note)
            except Exception as exc:
                _log.warning("audit.checkpoint_listener_failed", error_type=type(exc).__name__)
        return note

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The stored checkpoint for the largest tree size, or None before the first one."""
        return self._store.latest_checkpoint()

    def start(self) -> None:
        """Start the background checkpointer (idempotent)."""
        with self._admission:
            if self._closed:
                raise AuditUnavailable("the audit log is closed")
            if self._checkpointer is not None:
                return
            self._checkpointer_stop.clear()
            self._checkpointer = threading.Thread(
                target=self._sign_while_growing, name="audit-checkpointer", daemon=True
            )
            self._checkpointer.start()

    def _sign_while_growing(self) -> None:
        while not self._checkpointer_stop.wait(self._checkpoint_interval):
            try:
                if self._store.size() != self._signed_size:
                    self.checkpoint()
            except Exception as exc:
                # Already logged by checkpoint(); a store that fails now may heal next tick.
                _log.debug("audit.checkpointer_retrying", error_type=type(exc).__name__)

    def stop(self) -> SignedNote:
        """Stop the checkpointer, flush pending appends and sign a final checkpoint."""
        checkpointer = self._checkpointer
        if checkpointer is not None:
            self._checkpointer_stop.set()
            checkpointer.join()
            self._checkpointer = None
        self.flush()
        return self.checkpoint()

    # -- reading ---------------------------------------------------------------------------------

    def size(self) -> int:
        """Number of durable entries in the log (all replicas' appends included)."""
        return self._store.size()

    def _require_size(self, size: int) -> None:
        current = self._store.size()
        if not 0 <= size <= current:
            raise TreeSizeError(f"tree size {size} is not in 0..{current}")

    def root(self, size: int | None = None) -> bytes:
        """The tree head for ``size`` (default: the current size)."""
        size = self._store.size() if size is None else size
        self._require_size(size)
        return merkle.root_at(size, self._store.get_node)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The RFC 9162 audit path for entry ``index`` in the tree of ``size`` entries."""
        self._require_size(size)
        return merkle.inclusion_proof(index, size, self._store.get_node)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The RFC 9162 proof that the tree of ``old_size`` is a prefix of ``new_size``."""
        self._require_size(new_size)
        return merkle.consistency_proof(old_size, new_size, self._store.get_node)

    def entry(self, index: int) -> bytes:
        """The stored bytes of entry ``index``."""
        found = self._store.read_entries(index, index + 1) if index >= 0 else []
        if not found:
            raise TreeSizeError(f"no audit entry at index {index}")
        return found[0]

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``start <= i < end``; ``end`` is clipped to the current size."""
        if start < 0 or end < start:
            raise TreeSizeError(f"bad entry range [{start}, {end})")
        return self._store.read_entries(start, end)

    def export(
        self,
        out: BinaryIO | Callable[[bytes], object],
        progress: Callable[[int, int], object] | None = None,
        *,
        start: int = 0,
        end: int | None = None,
    ) -> int:
        """Stream entries ``[start, end)`` as NDJSON export lines to a binary file or a callback.

        ``end`` defaults to the size when the export begins, so the output matches one tree head.
        ``progress(done, total)`` is called after each chunk. Returns the ``end`` exported to."""
        write = cast("Callable[[bytes], object]", getattr(out, "write", out))
        stop = self._store.size() if end is None else end
        self._require_size(stop)
        if not 0 <= start <= stop:
            raise TreeSizeError(f"bad export range [{start}, {stop})")
        for chunk_start in range(start, stop, _EXPORT_CHUNK):
            chunk: Sequence[bytes] = self._store.read_entries(
                chunk_start, min(chunk_start + _EXPORT_CHUNK, stop)
            )
            for offset, entry in enumerate(chunk):
                write(export_line(chunk_start + offset, entry))
            if progress is not None:
                progress(chunk_start + len(chunk) - start, stop - start)
        return stop

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the checkpointer (signing a final checkpoint), drain the writer, close the store.

        Idempotent. Appends after ``close`` raise ``AuditUnavailable``."""
        with self._admission:
            if self._closing:
                return
            self._closing = True
        if self._checkpointer is not None:
            # Already logged if it fails; closing must still release the store.
            with contextlib.suppress(AuditUnavailable):
                self.stop()
        with self._admission:
            self._closed = True
            self._queue.put(_STOP)
        self._writer.join()
        self._store.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
