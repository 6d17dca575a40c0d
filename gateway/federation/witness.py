"""Witnessing: cosigning partners' checkpoints, collecting cosignatures of our own, and forks.

As a witness, this node cosigns a partner's checkpoint only if it is validly signed by that
partner's log key and consistent with the last checkpoint this node cosigned for it. As a log
owner, it asks every active partner to cosign its latest checkpoint from time to time.

A fork is two validly signed checkpoints of one log that cannot both be true: the same size with
different roots, or a new checkpoint that is not an extension of the old one. It is stored as
evidence (`federation_forks`), logged, and raised as `ForkDetected`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import bindparam, delete, exists, select, tuple_
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import col

from audit.checkpoint import (
    Checkpoint,
    SignedNote,
    cosign,
    verify_checkpoint,
    verify_cosignature,
)
from audit.errors import CheckpointError, ConsistencyProofError, CosignatureError
from audit.merkle import verify_consistency
from gateway.federation.client import PartnerClient, PartnerFailure
from gateway.federation.manifest import Member
from gateway.federation.members import (
    log_origin,
    log_verifiers,
    manifest_of,
    witness_name,
    witness_verifiers,
)
from gateway.federation.tables import (
    CosignatureRow,
    ForkEvidenceRow,
    SeenCheckpointRow,
    WitnessStateRow,
)
from gateway.node import Node

log = structlog.get_logger(__name__)


class WitnessError(Exception):
    """A cosign request this witness refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, *, known_size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.known_size = known_size


class ForkDetected(WitnessError):
    def __init__(self, force: str, message: str) -> None:
        super().__init__(409, message)
        self.force = force


def verify_partner_checkpoint(member: Member, note_text: str) -> Checkpoint:
    """The partner's checkpoint, verified under its log key(s); CheckpointError otherwise."""
    origin = log_origin(member.force_code)
    last: CheckpointError | None = None
    for vkey in log_verifiers(member):
        try:
            return verify_checkpoint(note_text, origin, vkey.name, vkey.public_key)
        except CheckpointError as exc:
            last = exc
    raise last or CheckpointError(f"force {member.force_code} publishes no log key")


def cosigned_by(member: Member, note_text: str) -> int | None:
    """The timestamp of `member`'s cosignature on a note, or None if it has none that verifies."""
    for vkey in witness_verifiers(member):
        try:
            return verify_cosignature(note_text, vkey.name, vkey.public_key)
        except (CosignatureError, CheckpointError):
            continue
    return None


async def record_fork(
    node: Node, force: str, size: int, note_a: str, note_b: str, reason: str
) -> None:
    async with node.db.sessions() as session:
        session.add(
            ForkEvidenceRow(
                force=force,
                size=size,
                note_a=note_a,
                note_b=note_b,
                reason=reason,
                detected_at=datetime.now(UTC),
            )
        )
        await session.commit()
    log.error("federation.fork_detected", force=force, size=size, reason=reason)


# (force, size) -> root of partner checkpoints this process has already stored. Many receipts carry
# the same checkpoint; a repeat needs no database round trip. Only an exact repeat is skipped: a
# different root for a size goes to the database check below, which detects the fork.
_SEEN: dict[tuple[int, str, int], str] = {}
_SEEN_LIMIT = 10_000

# Built once: building these per search (a values() of the rows, an OR of (force, size) pairs)
# cost more Python time than running them. One row at a time, each insert leaving an already
# stored size alone; the stored root is read back only for a size that was there before.
_SEEN_TABLE = SeenCheckpointRow.__table__  # type: ignore[attr-defined]
_SEEN_INSERT_SQLITE = (
    sqlite_insert(_SEEN_TABLE)
    .on_conflict_do_nothing()
    .returning(_SEEN_TABLE.c.force, _SEEN_TABLE.c.size)
)
_SEEN_INSERT_POSTGRES = (
    postgres_insert(_SEEN_TABLE)
    .on_conflict_do_nothing()
    .returning(_SEEN_TABLE.c.force, _SEEN_TABLE.c.size)
)
_SEEN_AT_SIZE = select(_SEEN_TABLE.c.root_hash, _SEEN_TABLE.c.note).where(
    _SEEN_TABLE.c.force == bindparam("force"), _SEEN_TABLE.c.size == bindparam("size")
)


# Retention: a seen checkpoint first seen before the cutoff goes, unless it is the largest size
# stored for its force (some larger size of the same force exists). The newest tree seen of each
# partner is therefore never forgotten, however long ago it was seen. The index on seen_at
# (migration 0007) finds the old rows; the primary key (force, size) answers the EXISTS.
# Deleted in batches, each its own short transaction: a backlog of millions of rows (the first
# prune after an upgrade) must not hold SQLite's write lock for seconds while searches wait.
PRUNE_BATCH = 5_000
_SEEN_NEWER = _SEEN_TABLE.alias("newer")
_SEEN_PRUNABLE = (
    select(_SEEN_TABLE.c.force, _SEEN_TABLE.c.size)
    .where(
        _SEEN_TABLE.c.seen_at < bindparam("cutoff", type_=_SEEN_TABLE.c.seen_at.type),
        exists()
        .where(
            _SEEN_NEWER.c.force == _SEEN_TABLE.c.force,
            _SEEN_NEWER.c.size > _SEEN_TABLE.c.size,
        )
        .correlate(_SEEN_TABLE),
    )
    .limit(bindparam("batch"))
)
_SEEN_PRUNE = delete(_SEEN_TABLE).where(
    tuple_(_SEEN_TABLE.c.force, _SEEN_TABLE.c.size).in_(_SEEN_PRUNABLE.scalar_subquery())
)


async def prune_seen_checkpoints(
    node: Node,
    *,
    retention_days: int | None = None,
    now: datetime | None = None,
    batch: int = PRUNE_BATCH,
) -> int:
    """Forget partner checkpoints first seen more than `retention_days` (default: the node's
    `seen_checkpoint_retention_days`) before `now`, except each force's largest size. Returns
    the number of rows deleted. Touches `federation_seen_checkpoints` only: witness state,
    cosignatures and fork evidence are kept.

    A partner showing another root for a size forgotten here is no longer caught by the
    same-size comparison in `note_seen_checkpoints`; see docs/federation.md."""
    days = (
        node.settings.seen_checkpoint_retention_days if retention_days is None else retention_days
    )
    if days < 1:
        raise ValueError("retention_days must be at least 1")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    cutoff = now - timedelta(days=days)

    def prune_batch(conn: Connection) -> int:
        deleted = conn.execute(_SEEN_PRUNE, {"cutoff": cutoff, "batch": batch}).rowcount
        conn.commit()
        return int(deleted)

    deleted = 0
    while True:
        # One batch per unit of database work: other writers get the lock between batches.
        done = await node.db.run_sync(prune_batch)
        deleted += done
        if done < batch:
            break
    if deleted:
        # The cache stands for "this (force, size, root) is stored"; some of it no longer is.
        # Cleared so that a forgotten checkpoint seen again is stored again (and a later other
        # root for its size caught): only one database round trip per checkpoint, once.
        _SEEN.clear()
    return deleted


async def note_seen_checkpoint(node: Node, force: str, checkpoint: Checkpoint, note: str) -> None:
    """Remember a partner checkpoint; raise ForkDetected if another root was seen at its size."""
    if await note_seen_checkpoints(node, [(force, checkpoint, note)]):
        raise ForkDetected(
            force, f"force {force} signed two different trees of size {checkpoint.size}"
        )


async def note_seen_checkpoints(
    node: Node, seen: Sequence[tuple[str, Checkpoint, str]]
) -> set[str]:
    """Remember several partner checkpoints (force, checkpoint, note) in one transaction, as a
    federated search does with every receipt it got. Returns the forces whose checkpoint is a
    second root for a size already seen (a fork: its evidence is stored, `record_fork`).

    Per checkpoint, an insert that leaves an already stored size alone, and for such a size a
    read of the root stored for it, so concurrent searches carrying the same checkpoint never
    conflict. All in one transaction and one thread hop."""
    fresh: dict[tuple[str, int], tuple[str, str]] = {}
    for force, checkpoint, note in seen:
        root = checkpoint.root_hash.hex()
        if _SEEN.get((id(node), force, checkpoint.size)) != root:
            fresh.setdefault((force, checkpoint.size), (root, note))
    if not fresh:
        return set()
    now = datetime.now(UTC)
    insert = _SEEN_INSERT_SQLITE if node.db.is_sqlite else _SEEN_INSERT_POSTGRES

    def store(conn: Connection) -> Sequence[Any]:
        found: list[tuple[str, int, str, str]] = []
        for (force, size), (root, note) in fresh.items():
            row = {"force": force, "size": size, "root_hash": root, "note": note, "seen_at": now}
            if conn.execute(insert, row).first() is not None:
                found.append((force, size, root, note))
                continue
            # Stored before (by this or another search): what root was stored for the size?
            stored = conn.execute(_SEEN_AT_SIZE, {"force": force, "size": size}).one()
            found.append((force, size, stored.root_hash, stored.note))
        conn.commit()
        return found

    # One unit of database work (one thread hop on SQLite, not one per statement and fetch).
    stored = await node.db.run_sync(store)
    forked: set[str] = set()
    for force, size, stored_root, stored_note in stored:
        root, note = fresh[(force, size)]
        if stored_root == root:
            if len(_SEEN) >= _SEEN_LIMIT:
                _SEEN.clear()
            _SEEN[(id(node), force, size)] = root
            continue
        await record_fork(node, force, size, stored_note, note, "same size, different root")
        forked.add(force)
    return forked


async def cosign_checkpoint(
    node: Node, member: Member, old_size: int, proof: list[bytes], note_text: str
) -> str:
    """Witness a partner's checkpoint: verify, check consistency, store, cosign."""
    force = member.force_code
    # 1. The log's own signature, under the key the manifest publishes for it.
    try:
        checkpoint = verify_partner_checkpoint(member, note_text)
    except CheckpointError as exc:
        raise WitnessError(403, f"checkpoint signature does not verify: {exc}") from exc
    # 2. Not a second root for a size this node has already seen.
    await note_seen_checkpoint(node, force, checkpoint, note_text)
    async with node.db.sessions() as session:
        state = await session.get(WitnessStateRow, force)
        known = state.size if state is not None else 0
        # 3. Never a tree older than the one cosigned last, whatever size the proof claims to
        #    start from: the log learns the size this witness stands at (it cannot prove its
        #    smaller tree from there, and says so).
        if checkpoint.size < known:
            raise WitnessError(
                409, "checkpoint is older than one already cosigned", known_size=known
            )
        # 4. The proof must start where this witness left off.
        if old_size != known:
            raise WitnessError(409, "consistency proof starts at the wrong size", known_size=known)
        if state is not None:
            # 5. The new tree extends the one cosigned last time (else: a fork).
            try:
                verify_consistency(
                    state.size,
                    checkpoint.size,
                    proof,
                    bytes.fromhex(state.root_hash),
                    checkpoint.root_hash,
                )
            except ConsistencyProofError as exc:
                previous = state.note
                await session.rollback()
                await record_fork(node, force, checkpoint.size, previous, note_text, "inconsistent")
                raise ForkDetected(
                    force, f"force {force}'s log is not an extension: {exc}"
                ) from exc
            state.size = checkpoint.size
            state.root_hash = checkpoint.root_hash.hex()
            state.note = note_text
            state.updated_at = datetime.now(UTC)
        else:
            session.add(
                WitnessStateRow(
                    force=force,
                    size=checkpoint.size,
                    root_hash=checkpoint.root_hash.hex(),
                    note=note_text,
                    updated_at=datetime.now(UTC),
                )
            )
        await session.commit()
    # 6. Cosign with this node's key under its witness name.
    cosigned = cosign(
        SignedNote.parse(note_text),
        witness_name(node.settings.force_code),
        node.signing_key.private_key,
        int(time.time()),
    )
    log.info("federation.checkpoint_cosigned", force=force, size=checkpoint.size)
    return cosigned.to_text()


async def store_cosignature(node: Node, witness: Member, note_text: str) -> int:
    """Keep a partner's cosignature of our own checkpoint after checking it. Returns the size."""
    checkpoint = Checkpoint.parse_body(SignedNote.parse(note_text).text)
    if checkpoint.origin != node.settings.log_origin:
        raise CheckpointError("the cosigned checkpoint is not of this node's log")
    if cosigned_by(witness, note_text) is None:
        raise CosignatureError(f"no valid cosignature by force {witness.force_code}")
    async with node.db.sessions() as session:
        session.add(
            CosignatureRow(
                witness_force=witness.force_code,
                size=checkpoint.size,
                note=note_text,
                collected_at=datetime.now(UTC),
            )
        )
        await session.commit()
    return checkpoint.size


async def latest_cosigned(node: Node) -> list[CosignatureRow]:
    """The newest cosigned checkpoint from each witness."""
    async with node.db.sessions() as session:
        rows = (
            (
                await session.execute(
                    select(CosignatureRow).order_by(col(CosignatureRow.size).desc())
                )
            )
            .scalars()
            .all()
        )
    newest: dict[str, CosignatureRow] = {}
    for row in rows:
        newest.setdefault(row.witness_force, row)
    return list(newest.values())


async def forks(node: Node) -> list[ForkEvidenceRow]:
    async with node.db.sessions() as session:
        return list((await session.execute(select(ForkEvidenceRow))).scalars().all())


@dataclass
class CollectionResult:
    witness: str
    size: int | None
    error: str | None = None


async def collect_cosignatures(node: Node, client: PartnerClient) -> list[CollectionResult]:
    """Ask each active partner to cosign our latest checkpoint (retry once from its size)."""
    holder = manifest_of(node)
    if holder is None:
        return []
    note = await asyncio.to_thread(node.audit.log.checkpoint)
    text = note.to_text()
    size = Checkpoint.parse_body(note.text).size
    own = node.settings.force_code
    partners = [m for m in holder.active_members() if m.force_code != own]

    async def one(member: Member) -> CollectionResult:
        known = 0
        async with node.db.sessions() as session:
            rows = (
                (
                    await session.execute(
                        select(col(CosignatureRow.size))
                        .where(col(CosignatureRow.witness_force) == member.force_code)
                        .order_by(col(CosignatureRow.size).desc())
                        .limit(1)
                    )
                )
                .scalars()
                .all()
            )
            known = int(rows[0]) if rows else 0
        for _ in range(2):
            proof = (
                await asyncio.to_thread(node.audit.log.consistency_proof, known, size)
                if known
                else []
            )
            payload = {"old_size": known, "proof": [p.hex() for p in proof], "checkpoint": text}
            try:
                reply = await client.call(
                    member, "POST", "/federation/v1/cosign", payload, accept=(409,)
                )
            except PartnerFailure as exc:
                return CollectionResult(member.force_code, None, f"{exc.status}: {exc.detail}")
            if reply.status_code == 409:
                # The witness stands at another size: retry once with a proof from there.
                stands = reply.body.get("known_size")
                if not isinstance(stands, int) or isinstance(stands, bool) or stands < 0:
                    return CollectionResult(member.force_code, None, "409 without a known size")
                if stands > size:
                    # Cosigned a larger tree of this log than this log holds: no proof can be
                    # made from there (a log restored from an old backup, or another history
                    # shown to the witness). Reported, never raised: other witnesses go on.
                    return CollectionResult(
                        member.force_code,
                        None,
                        f"the witness has cosigned a tree of size {stands}, "
                        f"larger than this log's {size}",
                    )
                known = stands
                continue
            try:
                got = await store_cosignature(node, member, str(reply.body.get("cosigned", "")))
            except (CheckpointError, CosignatureError) as exc:
                return CollectionResult(member.force_code, None, f"bad cosignature: {exc}")
            return CollectionResult(member.force_code, got)
        return CollectionResult(member.force_code, None, "witness state did not converge")

    return list(await asyncio.gather(*(one(m) for m in partners)))
