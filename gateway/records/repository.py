"""Database access for a force's records. Core statements (not ORM units of work): bulk loads
write thousands of rows per transaction, and ORM bookkeeping would cost more than the crypto.
Never commits: the caller's session does."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    LargeBinary,
    Table,
    bindparam,
    delete,
    distinct,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.records.protection import ProtectedRecord
from gateway.records.tables import ChangeRow, DataKeyRow, RecordRow, SearchTermRow

records: Table = RecordRow.__table__  # type: ignore[attr-defined]
data_keys: Table = DataKeyRow.__table__  # type: ignore[attr-defined]
search_terms: Table = SearchTermRow.__table__  # type: ignore[attr-defined]
changes: Table = ChangeRow.__table__  # type: ignore[attr-defined]

_RECORD_COLUMNS = (
    "record_id",
    "kind",
    "schema_version",
    "version",
    "classification_rank",
    "handling_code",
    "policy_attrs",
    "class_key",
    "next_review",
    "document",
    "data_key_id",
    "content_sha256",
    "index_version",
    "created_at",
    "updated_at",
)


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


@dataclass(frozen=True)
class _BulkInsert:
    sql: str
    positional: bool
    processors: tuple[Callable[[Any], Any] | None, ...]


_BULK_INSERTS: weakref.WeakKeyDictionary[
    Dialect, dict[tuple[str, tuple[str, ...]], _BulkInsert]
] = weakref.WeakKeyDictionary()


def _bulk_insert(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> _BulkInsert:
    statements = _BULK_INSERTS.setdefault(dialect, {})
    found = statements.get((table.name, columns))
    if found is None:
        compiled = insert(table).compile(
            dialect=dialect, column_keys=list(columns), for_executemany=True
        )
        if compiled.positional and tuple(compiled.positiontup or ()) != columns:
            raise RuntimeError(f"unexpected parameter order for {table.name}")
        found = statements[(table.name, columns)] = _BulkInsert(
            sql=str(compiled),
            positional=bool(compiled.positional),
            processors=tuple(_bind_processor(dialect, table, c) for c in columns),
        )
    return found


def _bind_processor(dialect: Dialect, table: Table, column: str) -> Callable[[Any], Any] | None:
    # A blob column's processor wraps each value in the driver's Binary type (a memoryview for
    # sqlite3), one call per blind tag at bulk-load rates. Both drivers bind bytes as a blob
    # (BLOB, bytea) as they are, so the stored bytes do not change without it.
    if isinstance(table.c[column].type, LargeBinary):
        return None
    return table.c[column].type.dialect_impl(dialect).bind_processor(dialect)


def _once_per_value(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    done: dict[Any, Any] = {}

    def once(value: Any) -> Any:
        if value not in done:
            done[value] = process(value)
        return done[value]

    return once


async def _insert_many(
    session: AsyncSession, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """One parameterised INSERT executed for many rows by the driver (executemany).

    The statement is compiled by SQLAlchemy once per dialect and table, and each value goes
    through the bind processor SQLAlchemy would apply to its column (JSON, dates and times), so
    the stored bytes are the same; what is skipped is SQLAlchemy's per-row parameter assembly,
    which cost more than SQLite's own insert at bulk-load rates."""
    if not rows:
        return
    conn = await session.connection()
    plan = _bulk_insert(conn.dialect, table, columns)
    processors = plan.processors
    if any(processors):
        # The rows of a chunk share their write time: a date or time column's processor runs
        # once per distinct value.
        processors = tuple(
            _once_per_value(f) if f is not None and isinstance(rows[0][i], date) else f
            for i, f in enumerate(processors)
        )
        rows = [
            tuple(v if f is None else f(v) for f, v in zip(processors, row, strict=True))
            for row in rows
        ]
    if plan.positional:
        await conn.exec_driver_sql(plan.sql, rows)
    else:
        await conn.exec_driver_sql(plan.sql, [dict(zip(columns, row, strict=True)) for row in rows])


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


# The two reads every search makes are built once, with expanding bind parameters, and then only
# executed: SQLAlchemy caches their compiled form and expands the IN lists when executing.
# Building the select() on every call was most of the Python time of these reads.
_RECORDS_BY_ID = (
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
    .where(records.c.record_id.in_(bindparam("ids", expanding=True)))
)
# The candidate reads of a search (`candidate_ids_sync`): records holding any of some tags, or
# every one of them, optionally only among records already found by another query field.
_WITHIN = search_terms.c.record_id.in_(bindparam("ids", expanding=True))
_IDS_ANY = select(search_terms.c.record_id).where(
    search_terms.c.term_kind == bindparam("kind"),
    search_terms.c.tag.in_(bindparam("tags", expanding=True)),
)
_IDS_ANY_WITHIN = _IDS_ANY.where(_WITHIN)
_HOLDS_ALL_N = func.count(distinct(search_terms.c.tag)) == bindparam("n")
_IDS_ALL = _IDS_ANY.group_by(search_terms.c.record_id).having(_HOLDS_ALL_N)
# Every name part among the records another field found. Those are at most NARROW_WITHIN_MAX
# records of a few terms each, while one common phonetic part can be held by thousands of
# records, and SQLite, which cannot see the bound values, chose to walk the part's tags
# (ix_search_terms_lookup): ~1 ms on a 100,000-record node, growing with the node. Writing the
# kind as an expression (`term_kind || ''`, the same value) takes that index out of the choice,
# on SQLite and PostgreSQL alike, so the read goes through the record ids: ~0.01 ms.
_IDS_ALL_WITHIN = (
    select(search_terms.c.record_id)
    .where(
        search_terms.c.term_kind.concat("") == bindparam("kind"),
        search_terms.c.tag.in_(bindparam("tags", expanding=True)),
        _WITHIN,
    )
    .group_by(search_terms.c.record_id)
    .having(_HOLDS_ALL_N)
)


_IDS_OF_KINDS = select(records.c.record_id).where(
    records.c.record_id.in_(bindparam("ids", expanding=True)),
    records.c.kind.in_(bindparam("kinds", expanding=True)),
)
# Ids per statement in `ids_of_kinds_sync`: well under the bound-parameter limits of SQLite
# (32,766) and PostgreSQL (65,535).
IDS_PER_READ = 10_000


def ids_of_kinds_sync(conn: Connection, ids: Collection[str], kinds: Sequence[str]) -> set[str]:
    """Those of `ids` whose record is of one of `kinds` (synchronous, `Database.run_sync`)."""
    ordered = sorted(ids)
    found: set[str] = set()
    for start in range(0, len(ordered), IDS_PER_READ):
        params = {"ids": ordered[start : start + IDS_PER_READ], "kinds": list(kinds)}
        found.update(r[0] for r in conn.execute(_IDS_OF_KINDS, params))
    return found


def fetch_records_sync(conn: Connection, ids: Sequence[str]) -> list[StoredRecord]:
    """The stored rows of these records, with their wrapped data keys, on a synchronous
    connection (`Database.run_sync`): ids not held are left out."""
    if not ids:
        return []
    return [StoredRecord(*r) for r in conn.execute(_RECORDS_BY_ID, {"ids": list(ids)})]


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
    await _insert_many(
        session,
        changes,
        ("record_id", "version", "op", "reason", "at"),
        [(p.record_id, version, "upsert", None, now) for p, version, _ in items],
    )
    await _insert_many(
        session,
        data_keys,
        ("key_id", "record_id", "kek_version", "wrapped"),
        [
            (p.data_key_id, p.record_id, p.wrapped_key.kek_version, p.wrapped_key.blob)
            for p in created
            if p.wrapped_key is not None
        ],
    )
    await _insert_many(
        session,
        records,
        _RECORD_COLUMNS,
        [
            (
                p.record_id,
                p.kind,
                p.schema_version,
                version,
                p.classification_rank,
                p.handling_code,
                p.policy_attrs,
                p.class_key,
                p.next_review,
                p.document,
                p.data_key_id,
                p.content_sha256,
                index_version,
                now,
                now,
            )
            for p, version, is_new in items
            if is_new
        ],
    )
    replaced_rows = [
        {
            "b_record_id": p.record_id,
            "b_kind": p.kind,
            "b_schema_version": p.schema_version,
            "b_version": version,
            "b_classification_rank": p.classification_rank,
            "b_handling_code": p.handling_code,
            "b_policy_attrs": p.policy_attrs,
            "b_class_key": p.class_key,
            "b_next_review": p.next_review,
            "b_document": p.document,
            "b_data_key_id": p.data_key_id,
            "b_content_sha256": p.content_sha256,
            "b_index_version": index_version,
            "b_updated_at": now,
        }
        for p, version, is_new in items
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
    await _insert_many(
        session,
        search_terms,
        ("record_id", "term_kind", "tag", "index_version"),
        [(p.record_id, kind, tag, v) for p, _, _ in items for kind, tag, v in p.terms],
    )


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


def _tags_by_kind(terms: Sequence[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    by_kind: dict[str, list[bytes]] = {}
    for kind, tag in terms:
        by_kind.setdefault(kind, []).append(tag)
    return by_kind


def candidate_ids_sync(
    conn: Connection,
    any_of: Sequence[tuple[str, bytes]],
    all_of: Sequence[tuple[str, bytes]] = (),
    *,
    within: Collection[str] | None = None,
) -> set[str]:
    """Ids of the records that hold any tag of `any_of`, or every tag of `all_of` (one term
    kind), restricted to `within` when it is given. Tags only: nothing is decrypted here.

    The database does the narrowing, so a broad term (a common phonetic name part held by
    thousands of records) never brings its thousands of rows into Python.
    """
    if within is not None and not within:
        return set()
    params: dict[str, Any] = {} if within is None else {"ids": list(within)}
    found: set[str] = set()
    for kind, tags in _tags_by_kind(any_of).items():
        statement = _IDS_ANY if within is None else _IDS_ANY_WITHIN
        found.update(r[0] for r in conn.execute(statement, {**params, "kind": kind, "tags": tags}))
    if all_of:
        by_kind = _tags_by_kind(all_of)
        if len(by_kind) != 1:
            raise ValueError("all_of takes tags of one term kind")
        ((kind, tags),) = by_kind.items()
        wanted = set(tags)
        statement = _IDS_ALL if within is None else _IDS_ALL_WITHIN
        found.update(
            r[0]
            for r in conn.execute(
                statement, {**params, "kind": kind, "tags": list(wanted), "n": len(wanted)}
            )
        )
    return found
