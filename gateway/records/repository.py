"""Database access for a force's records. Core statements (not ORM units of work): bulk loads
write thousands of rows per transaction, and ORM bookkeeping would cost more than the crypto.
Never commits: the caller's session does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.records.protection import ProtectedRecord
from gateway.records.tables import ChangeRow, DataKeyRow, RecordRow, SearchTermRow

records = RecordRow.__table__  # type: ignore[attr-defined]
data_keys = DataKeyRow.__table__  # type: ignore[attr-defined]
search_terms = SearchTermRow.__table__  # type: ignore[attr-defined]
changes = ChangeRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ExistingRecord:
    record_id: str
    version: int
    content_sha256: str
    data_key_id: str
    kek_version: str
    wrapped: bytes


@dataclass(frozen=True)
class StoredRecord:
    record_id: str
    kind: str
    version: int
    document: dict[str, Any]
    data_key_id: str
    kek_version: str
    wrapped: bytes
    policy_attrs: dict[str, Any]
    class_key: str


async def existing_records(session: AsyncSession, ids: Sequence[str]) -> dict[str, ExistingRecord]:
    if not ids:
        return {}
    rows = await session.execute(
        select(
            records.c.record_id,
            records.c.version,
            records.c.content_sha256,
            records.c.data_key_id,
            data_keys.c.kek_version,
            data_keys.c.wrapped,
        )
        .join(data_keys, data_keys.c.record_id == records.c.record_id)
        .where(records.c.record_id.in_(list(ids)))
    )
    return {r.record_id: ExistingRecord(*r) for r in rows}


async def fetch_records(session: AsyncSession, ids: Sequence[str]) -> list[StoredRecord]:
    if not ids:
        return []
    rows = await session.execute(
        select(
            records.c.record_id,
            records.c.kind,
            records.c.version,
            records.c.document,
            records.c.data_key_id,
            data_keys.c.kek_version,
            data_keys.c.wrapped,
            records.c.policy_attrs,
            records.c.class_key,
        )
        .join(data_keys, data_keys.c.record_id == records.c.record_id)
        .where(records.c.record_id.in_(list(ids)))
    )
    return [StoredRecord(*r) for r in rows]


async def write_records(
    session: AsyncSession,
    items: Sequence[tuple[ProtectedRecord, int, bool]],
    now: datetime,
    index_version: int,
) -> None:
    """Insert new and replace existing records, their keys, terms and change-feed rows.

    `items` are (protected record, new version, created?); `index_version` is the newest blind
    index version their terms were written for."""
    if not items:
        return
    created = [p for p, _, is_new in items if is_new]
    replaced_ids = [p.record_id for p, _, is_new in items if not is_new]
    if replaced_ids:
        await session.execute(
            delete(search_terms).where(search_terms.c.record_id.in_(replaced_ids))
        )
    await session.execute(
        insert(changes),
        [
            {
                "record_id": p.record_id,
                "version": version,
                "op": "upsert",
                "reason": None,
                "at": now,
            }
            for p, version, _ in items
        ],
    )
    new_keys = [
        {
            "key_id": p.data_key_id,
            "record_id": p.record_id,
            "kek_version": p.wrapped_key.kek_version,
            "wrapped": p.wrapped_key.blob,
        }
        for p in created
        if p.wrapped_key is not None
    ]
    if new_keys:
        await session.execute(insert(data_keys), new_keys)
    rows = [
        {
            "record_id": p.record_id,
            "kind": p.kind,
            "schema_version": p.schema_version,
            "version": version,
            "classification_rank": p.classification_rank,
            "handling_code": p.handling_code,
            "policy_attrs": p.policy_attrs,
            "class_key": p.class_key,
            "next_review": p.next_review,
            "document": p.document,
            "data_key_id": p.data_key_id,
            "content_sha256": p.content_sha256,
            "index_version": index_version,
            "created_at": now,
            "updated_at": now,
        }
        for p, version, _ in items
    ]
    new_rows = [r for r, (_, _, is_new) in zip(rows, items, strict=True) if is_new]
    if new_rows:
        await session.execute(insert(records), new_rows)
    replaced_rows = [
        {("b_" + k): v for k, v in r.items() if k != "created_at"}
        for r, (_, _, is_new) in zip(rows, items, strict=True)
        if not is_new
    ]
    if replaced_rows:
        columns = [k[2:] for k in replaced_rows[0] if k != "b_record_id"]
        await session.execute(
            update(records)
            .where(records.c.record_id == bindparam("b_record_id"))
            .values({c: bindparam("b_" + c) for c in columns}),
            replaced_rows,
        )
    terms = [
        {"record_id": p.record_id, "term_kind": kind, "tag": tag, "index_version": v}
        for p, _, _ in items
        for kind, tag, v in p.terms
    ]
    if terms:
        await session.execute(insert(search_terms), terms)


async def erase_record(
    session: AsyncSession, record_id: str, version: int, reason: str, now: datetime
) -> None:
    """Delete a record and its data key (crypto-shredding) and leave a tombstone in the feed."""
    await session.execute(delete(search_terms).where(search_terms.c.record_id == record_id))
    await session.execute(delete(records).where(records.c.record_id == record_id))
    await session.execute(delete(data_keys).where(data_keys.c.record_id == record_id))
    await session.execute(
        insert(changes).values(
            record_id=record_id, version=version, op="delete", reason=reason, at=now
        )
    )


async def was_erased(session: AsyncSession, record_id: str) -> bool:
    row = await session.execute(
        select(changes.c.op)
        .where(changes.c.record_id == record_id)
        .order_by(changes.c.seq.desc())
        .limit(1)
    )
    op = row.scalar_one_or_none()
    return op == "delete"


async def change_feed(session: AsyncSession, since: int, limit: int) -> list[ChangeRow]:
    rows = await session.execute(
        select(changes).where(changes.c.seq > since).order_by(changes.c.seq).limit(limit)
    )
    return [ChangeRow(**r._mapping) for r in rows]


async def record_ids_by_terms(
    session: AsyncSession, terms: Sequence[tuple[str, bytes]]
) -> dict[str, set[tuple[str, bytes]]]:
    """Record ids holding any of the given blind terms, with which terms each one matched."""
    found: dict[str, set[tuple[str, bytes]]] = {}
    by_kind: dict[str, list[bytes]] = {}
    for kind, tag in terms:
        by_kind.setdefault(kind, []).append(tag)
    for kind, tags in by_kind.items():
        rows = await session.execute(
            select(search_terms.c.record_id, search_terms.c.tag).where(
                col(SearchTermRow.term_kind) == kind, search_terms.c.tag.in_(tags)
            )
        )
        for record_id, tag in rows:
            found.setdefault(record_id, set()).add((kind, bytes(tag)))
    return found
