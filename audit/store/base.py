"""The storage contract every audit log backend fulfils, and the values it hands back.

A store keeps opaque entry bytes under contiguous indexes with their leaf hashes, and the RFC 9162
interior perfect subtree hashes completed by each append, so that roots and proofs for any past
size are served from stored nodes without rehashing the log. Stores know nothing about entry
contents, signing keys or clocks: the caller passes the time of each append and checkpoint."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from audit.errors import AuditError
from audit.merkle import Frontier, leaf_hash

#: Names of the tables a store owns; all three refuse UPDATE and DELETE by trigger.
AUDIT_TABLES: tuple[str, ...] = ("audit_entries", "audit_nodes", "audit_checkpoints")


class AuditUnavailable(AuditError):
    """The audit log could not make an entry durable, so the caller must not disclose anything.

    Raised to every caller waiting on a batch that failed to commit, and to callers of a log that
    has been closed. The log keeps running: a later append succeeds once the store recovers.
    """


class AuditStoreError(AuditError):
    """A store's contents contradict themselves (e.g. a node that should exist is missing)."""


@dataclass(frozen=True, slots=True)
class AppendedLeaf:
    """Where one appended entry landed: its index in the log and its RFC 9162 leaf hash."""

    index: int
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint note as stored, with the tree size it commits to and when it was made."""

    size: int
    note: str
    created_at: datetime


#: Signs the tree head (size, root) a batch produces; returns the checkpoint note text.
SignTreeHead = Callable[[int, bytes], str]


@runtime_checkable
class AuditStore(Protocol):
    """Durable, append-only storage for one Merkle log.

    Implementations must be safe to call from several threads; ``append`` calls may come from
    several processes sharing one database and must still produce one contiguous log.
    """

    def append(
        self, entries: Sequence[bytes], appended_at: datetime, sign: SignTreeHead | None = None
    ) -> list[AppendedLeaf]:
        """Store ``entries`` atomically at the next contiguous indexes, with their leaf hashes and
        every perfect node they complete. Returns one ``AppendedLeaf`` per entry, in order.
        Either all entries are durable when this returns, or it raises and none are stored.

        With ``sign``, the store also calls ``sign(size, root)`` with the tree head that includes
        the batch and stores the note it returns as a checkpoint in the same transaction.
        (A store without the ``sign`` parameter still works: the log then signs separately.)"""
        ...

    def size(self) -> int:
        """The number of entries committed so far."""
        ...

    def get_node(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree covering leaves ``[index·2^level, (index+1)·2^level)``
        (level 0: the leaf hash of entry ``index``).

        Raises ``KeyError`` if that subtree is not complete in the stored log."""
        ...

    def read_rows(self, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
        """(index, entry bytes, stored leaf hash) of the rows present in [start, end), as stored:
        a forensic read that reports gaps and oddities instead of refusing them."""
        ...

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entry bytes for indexes ``start <= i < end`` (``end`` is clipped to the size)."""
        ...

    def save_checkpoint(self, size: int, note: str, created_at: datetime) -> None:
        """Durably record a signed checkpoint note for tree ``size``."""
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest size (the newest among equals), or None."""
        ...

    def checkpoints(self, min_size: int = 0) -> list[StoredCheckpoint]:
        """Every stored checkpoint with ``size >= min_size``, oldest first."""
        ...

    def frontier(self) -> Frontier:
        """A fresh frontier for the committed tree, for resuming appends after a restart."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...


def extend_frontier(
    frontier: Frontier, entries: Sequence[bytes]
) -> tuple[list[AppendedLeaf], list[tuple[int, int, bytes]]]:
    """Append ``entries`` to ``frontier`` (mutating it); return their leaves and the interior
    perfect nodes (level >= 1) completed on the way, for a backend to insert in one transaction.

    Level 0 nodes are the leaf hashes, which backends keep once, beside their entries."""
    leaves: list[AppendedLeaf] = []
    interior: list[tuple[int, int, bytes]] = []
    for entry in entries:
        completed = frontier.append(leaf_hash(entry))
        leaves.append(AppendedLeaf(completed[0][1], completed[0][2]))
        interior.extend(completed[1:])
    return leaves, interior


def require_aware(moment: datetime) -> datetime:
    """``moment`` in UTC; naive datetimes are refused because audit times must be unambiguous."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC)
