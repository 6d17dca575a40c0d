"""The force system's record operations: create or replace, read back, erase, bulk load, changes.

Every write is logged as an s.62 operation (collect, alter, erase) in the audit log, and the
database transaction commits only after the audit entry is durable: nothing is stored unlogged.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from audit.entry import RecordRef
from gateway.audit_api.service import NodeAudit
from gateway.cursors import decode_cursor, encode_cursor
from gateway.errors import (
    BadRequest,
    Forbidden,
    Gone,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
)
from gateway.identity.principals import SystemPrincipal
from gateway.keys.provider import WrappedKey
from gateway.node import Node
from gateway.records import index_versions, repository
from gateway.records.parallel import BulkWorkers, Sealed, line_outcomes, with_wrapped_key
from gateway.records.protection import (
    IndexView,
    NodeKeys,
    ProtectedRecord,
    TermMemo,
    protect_record,
)
from schemas import RecordValidationError, parse_record
from schemas.enums import S62Operation

log = structlog.get_logger(__name__)

WriteStatus = Literal["created", "replaced", "unchanged"]
ERASE_REASONS = ("retention_review", "erasure", "error", "duplicate")


@dataclass(frozen=True)
class WriteOutcome:
    record_id: str
    version: int
    status: WriteStatus


def _now() -> datetime:
    return datetime.now(UTC)


def _check_owner(record: dict[str, Any], keys: NodeKeys) -> None:
    if record.get("owner_force") != keys.force:
        raise Forbidden(
            f"This node holds force {keys.force}'s records; a record owned by force "
            f"{record.get('owner_force')} must be sent to that force's node."
        )


def _protect_batch(
    records: Sequence[dict[str, Any]],
    existing: dict[str, repository.ExistingRecord],
    keys: NodeKeys,
    view: IndexView,
    memo: TermMemo | None = None,
    sealed: Sequence[Sealed | None] | None = None,
) -> list[tuple[ProtectedRecord, int, bool] | None]:
    """CPU work (encryption, HMAC), run in a worker thread. None marks an unchanged record.
    `memo`: normalised terms shared with the other chunks of one upload (else this batch's).
    `sealed`: what bulk-load worker processes prepared for each record, if anything; used for a
    new record whose tags were made under this batch's index versions (gateway/records/parallel)."""
    out: list[tuple[ProtectedRecord, int, bool] | None] = []
    if memo is None:
        memo = {}
    elif len(memo) > MAX_TERM_MEMO:
        memo.clear()  # bounded: an upload of distinct values starts over rather than grows
    for position, record in enumerate(records):
        old = existing.get(record["id"])
        if old is None:
            ready = sealed[position] if sealed else None
            if (
                ready is not None
                and ready.writable == view.writable
                and ready.protected.record_id == record["id"]
            ):
                out.append((with_wrapped_key(ready, keys.kek.wrap), 1, True))
                continue
            protected = protect_record(record, keys, view=view, memo=memo)
            out.append((protected, 1, True))
            continue
        data_key = keys.kek.unwrap(WrappedKey(kek_version=old.kek_version, blob=old.wrapped))
        protected = protect_record(
            record, keys, reuse_key=(old.data_key_id, data_key), view=view, memo=memo
        )
        if protected.content_sha256 == old.content_sha256:
            out.append(None)
        else:
            out.append((protected, old.version + 1, False))
    return out


def _set_versions(record: dict[str, Any], version: int) -> None:
    record["version"] = version


async def store_records(
    *,
    session: AsyncSession,
    keys: NodeKeys,
    audit: NodeAudit,
    principal: SystemPrincipal,
    records: Sequence[dict[str, Any]],
    request_id: str | None,
    expected_versions: dict[str, int] | None = None,
    memo: TermMemo | None = None,
    sealed: Sequence[Sealed | None] | None = None,
) -> list[WriteOutcome]:
    """Create or replace validated records (plain JSON form) of this node's force. `memo`:
    blind terms shared across the calls of one bulk upload (see protection.TermMemo); `sealed`:
    what bulk-load workers prepared for each record (see `_protect_batch`)."""
    for record in records:
        _check_owner(record, keys)
    ids = [r["id"] for r in records]
    existing = await repository.existing_records(session, ids)
    for record_id, expected in (expected_versions or {}).items():
        current = existing.get(record_id)
        if current is None or current.version != expected:
            have = "absent" if current is None else f"at version {current.version}"
            raise PreconditionFailed(
                f"Record {record_id} is {have}, not at version {expected} (If-Match)."
            )
    # The node assigns versions, so set them before hashing and encrypting.
    for record in records:
        old = existing.get(record["id"])
        _set_versions(record, 1 if old is None else old.version + 1)
    # One snapshot of the index versions for the whole batch; re-checked after the writes.
    view = keys.view
    protected = await asyncio.to_thread(_protect_batch, records, existing, keys, view, memo, sealed)
    outcomes: list[WriteOutcome] = []
    writes: list[tuple[ProtectedRecord, int, bool]] = []
    for record, item in zip(records, protected, strict=True):
        if item is None:
            old = existing[record["id"]]
            outcomes.append(WriteOutcome(record["id"], old.version, "unchanged"))
            continue
        writes.append(item)
        p, version, created = item
        outcomes.append(WriteOutcome(p.record_id, version, "created" if created else "replaced"))
    if not writes:
        return outcomes
    now = _now()
    await repository.write_records(session, writes, now, view.newest)
    await index_versions.settle_writes(
        session,
        keys,
        view,
        [record for record, item in zip(records, protected, strict=True) if item is not None],
    )
    await session.flush()
    # Audit before commit: a collection that cannot be logged does not happen.
    for operation, created_flag in ((S62Operation.COLLECT, True), (S62Operation.ALTER, False)):
        refs = [
            RecordRef(force=keys.force, record_id=p.record_id, version=v)
            for p, v, c in writes
            if c is created_flag
        ]
        if refs:
            await audit.record(
                operation, actor=principal.actor(), request_id=request_id, records=refs
            )
    return outcomes


async def put_record(
    *,
    session: AsyncSession,
    keys: NodeKeys,
    audit: NodeAudit,
    principal: SystemPrincipal,
    record_id: str,
    data: dict[str, Any],
    if_match: int | None,
    request_id: str | None,
) -> WriteOutcome:
    if data.get("id") != record_id:
        raise BadRequest(
            f"The record's id ({data.get('id')!r}) does not match the URL ({record_id!r}).",
            extra={"errors": [{"pointer": "/id", "detail": "must equal the id in the URL"}]},
        )
    record = parse_record(data).model_dump(mode="json")
    outcomes = await store_records(
        session=session,
        keys=keys,
        audit=audit,
        principal=principal,
        records=[record],
        request_id=request_id,
        expected_versions={record_id: if_match} if if_match is not None else None,
    )
    return outcomes[0]


async def read_own_record(
    *,
    node: Node,
    principal: SystemPrincipal,
    record_id: str,
    request_id: str | None,
) -> dict[str, Any]:
    """The owning force's system reads its record back, decrypted (an s.62 consultation)."""
    from gateway.search.service import OWNER_SYNC_POLICY, read_for_owner_system

    found = await read_for_owner_system(node=node, record_id=record_id)
    if found is None:
        async with node.db.sessions() as session:
            erased = await repository.was_erased(session, record_id)
        if erased:
            raise Gone(f"Record {record_id} was erased.")
        raise NotFound(f"This node holds no record {record_id}.")
    version, record = found
    await node.audit.record(
        S62Operation.CONSULT,
        actor=principal.actor(),
        request_id=request_id,
        purpose="record_sync",
        decision="full",
        policy_ids=(OWNER_SYNC_POLICY,),
        policy_hash=node.policies.policy_hash,
        records=[RecordRef(force=node.keys.force, record_id=record_id, version=version)],
    )
    return record


async def erase(
    *,
    session: AsyncSession,
    keys: NodeKeys,
    audit: NodeAudit,
    principal: SystemPrincipal,
    record_id: str,
    reason: str,
    request_id: str | None,
) -> int:
    if reason not in ERASE_REASONS:
        raise BadRequest(f"Unknown erase reason {reason!r}; use one of {', '.join(ERASE_REASONS)}.")
    existing = await repository.existing_records(session, [record_id])
    if record_id not in existing:
        if await repository.was_erased(session, record_id):
            raise Gone(f"Record {record_id} was already erased.")
        raise NotFound(f"This node holds no record {record_id}.")
    version = existing[record_id].version
    await repository.erase_record(session, record_id, version, reason, _now())
    await session.flush()
    await audit.record(
        S62Operation.ERASE,
        actor=principal.actor(),
        request_id=request_id,
        purpose=reason,
        records=[RecordRef(force=keys.force, record_id=record_id, version=version)],
    )
    return version


# --- bulk ------------------------------------------------------------------------------------


@dataclass(slots=True)
class LineReport:
    line: int
    status: Literal["accepted", "rejected"]
    record_id: str | None = None
    version: int | None = None
    outcome: WriteStatus | None = None
    errors: tuple[dict[str, str], ...] = ()


@dataclass
class BulkReport:
    accepted: int = 0
    rejected: int = 0
    created: int = 0
    replaced: int = 0
    unchanged: int = 0
    atomic: bool = False
    committed: bool = True
    lines: list[LineReport] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The answer in the shape of `payloads.BulkResult` dumped as JSON (every member, nulls
        included), built directly: validating a 200,000-line report through the model costs more
        than it checks (tests/gateway/test_bulk_fast_paths.py holds the two equal)."""
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "created": self.created,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "atomic": self.atomic,
            "committed": self.committed,
            "lines": [
                {
                    "line": line.line,
                    "status": line.status,
                    "record_id": line.record_id,
                    "version": line.version,
                    "outcome": line.outcome,
                    "errors": [dict(error) for error in line.errors],
                }
                for line in self.lines
            ],
        }


BULK_CHUNK = 500
# Distinct indexed values whose blind terms one upload keeps for its later chunks (a few
# hundred bytes each); past this the memo is emptied and refilled.
MAX_TERM_MEMO = 50_000

_startup_heap_frozen = False


def freeze_startup_heap() -> None:
    """Move what the process holds now (modules, schemas, compiled SQL, policies...) out of the
    garbage collector's reach, once, when the node has started (the app's lifespan).

    A bulk load allocates millions of short-lived containers, and every full collection they
    trigger walks the whole heap: on a started node (~190,000 tracked objects) that was a
    quarter of the node's CPU time per record. Frozen objects are still live and reference
    counted; they are only no longer scanned for cycles (`gc.freeze`, the usual treatment for
    long-running servers). Collects first, so no garbage is frozen. Idempotent."""
    global _startup_heap_frozen
    if _startup_heap_frozen:
        return
    _startup_heap_frozen = True
    gc.collect()
    gc.freeze()


async def bulk_load(
    *,
    session: AsyncSession,
    keys: NodeKeys,
    audit: NodeAudit,
    principal: SystemPrincipal,
    lines: AsyncIterator[bytes],
    atomic: bool,
    max_lines: int,
    max_line_bytes: int,
    request_id: str | None,
    workers: BulkWorkers | None = None,
) -> BulkReport:
    """Load NDJSON records in chunks. Non-atomic: each chunk commits on its own, so a crash keeps
    every chunk committed before it and nothing of the rest: not the chunk being stored, nor
    (with workers) the chunks still being prepared. A retry with the same content stores those
    and reports what landed as unchanged.
    Atomic: one transaction, rolled back when any line is rejected.

    One chunk is stored (encrypted, written, audited, committed) while the lines of the next are
    parsed and validated: the database work of one overlaps the parsing of the other. Chunks are
    still stored one at a time, in order, on the one session; the next starts only when the
    previous has committed. With `workers`, lines are parsed, validated and sealed in worker
    processes, ahead of the chunk being stored (gateway/records/parallel.py)."""
    report = BulkReport(atomic=atomic)
    pending: list[tuple[int, dict[str, Any], Sealed | None]] = []
    seen_ids: dict[str, int] = {}
    count = 0
    in_flight: asyncio.Future[None] | None = None
    # Names, towns and numbers recur across an upload's chunks; their terms are computed once
    # per upload. Only this request's own plaintext, dropped with the request.
    memo: TermMemo = {}

    async def store(batch: list[tuple[int, dict[str, Any], Sealed | None]]) -> None:
        outcomes = await store_records(
            session=session,
            keys=keys,
            audit=audit,
            principal=principal,
            records=[r for _, r, _ in batch],
            request_id=request_id,
            memo=memo,
            sealed=[s for _, _, s in batch],
        )
        for (line_no, _, _), outcome in zip(batch, outcomes, strict=True):
            report.accepted += 1
            setattr(report, outcome.status, getattr(report, outcome.status) + 1)
            report.lines.append(
                LineReport(
                    line=line_no,
                    status="accepted",
                    record_id=outcome.record_id,
                    version=outcome.version,
                    outcome=outcome.status,
                )
            )
        if not atomic:
            await session.commit()

    async def drain() -> None:
        """Wait for the chunk being stored; its failure is the upload's failure."""
        nonlocal in_flight
        if in_flight is not None:
            task, in_flight = in_flight, None
            await task

    async def flush() -> None:
        nonlocal in_flight
        await drain()
        if pending:
            batch = list(pending)
            pending.clear()
            in_flight = asyncio.ensure_future(store(batch))

    outcomes = line_outcomes(
        lines,
        max_line_bytes=max_line_bytes,
        workers=workers,
        force=keys.force,
        view=lambda: keys.view,
    )
    try:
        async for parsed in outcomes:
            count += 1
            if count > max_lines:
                raise PayloadTooLarge(f"A bulk upload holds at most {max_lines} lines.")
            record = parsed.record
            if record is None:
                report.rejected += 1
                report.lines.append(
                    LineReport(
                        line=parsed.line,
                        status="rejected",
                        errors=tuple({"pointer": p, "detail": d} for p, d in parsed.errors),
                    )
                )
                continue
            if record.get("owner_force") != keys.force:
                report.rejected += 1
                report.lines.append(
                    LineReport(
                        line=parsed.line,
                        status="rejected",
                        record_id=record.get("id"),
                        errors=(
                            {
                                "pointer": "/owner_force",
                                "detail": f"this node holds force {keys.force}'s records only",
                            },
                        ),
                    )
                )
                continue
            if record["id"] in seen_ids:
                first = seen_ids[record["id"]]
                report.rejected += 1
                report.lines.append(
                    LineReport(
                        line=parsed.line,
                        status="rejected",
                        record_id=record["id"],
                        errors=(
                            {
                                "pointer": "/id",
                                "detail": f"duplicate of line {first} in this upload",
                            },
                        ),
                    )
                )
                continue
            seen_ids[record["id"]] = parsed.line
            pending.append((parsed.line, record, parsed.sealed))
            if len(pending) >= BULK_CHUNK:
                await flush()
        await drain()
    except BaseException:
        # Never leave a chunk writing on the session behind: let it finish (or fail) first, so
        # the caller's rollback or close finds the session idle. The upload's own error wins.
        if in_flight is not None:
            with contextlib.suppress(Exception):
                await drain()
        raise
    finally:
        await outcomes.aclose()  # chunks still with the workers are dropped
    if atomic and report.rejected:
        await session.rollback()
        report.committed = False
        report.created = report.replaced = report.unchanged = 0
        report.accepted = 0
        report.lines = [line for line in report.lines if line.status == "rejected"]
        return report
    await flush()
    await drain()
    report.lines.sort(key=lambda line: line.line)
    return report


# --- change feed -----------------------------------------------------------------------------

CHANGE_CURSOR = "c1"


async def changes_since(
    *, session: AsyncSession, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str]:
    since = decode_cursor(CHANGE_CURSOR, cursor) if cursor else 0
    rows = await repository.change_feed(session, since, limit)
    items = [
        {
            "seq": row.seq,
            "record_id": row.record_id,
            "version": row.version,
            "op": row.op,
            **({"reason": row.reason} if row.reason else {}),
            "at": row.at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
        }
        for row in rows
    ]
    last = rows[-1].seq if rows else since
    return items, encode_cursor(CHANGE_CURSOR, int(last or 0))


__all__ = [
    "BulkReport",
    "RecordValidationError",
    "WriteOutcome",
    "bulk_load",
    "changes_since",
    "erase",
    "put_record",
    "read_own_record",
    "store_records",
]
