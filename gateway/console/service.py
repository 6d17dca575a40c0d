"""What the console reads from the audit log: filtered entries, one entry in full, exports and
"who looked at this?".

Everything comes from the node's audit log (the evidence) and its derived index tables (for fast
filters); the same data the auditors' API serves. Nothing here writes: page views are logged by
the endpoints before they answer.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from audit.entry import AuditEntry, decode_entry
from audit.merkle import leaf_hash
from gateway.audit_api.tables import AuditIndexRecordRow, AuditIndexRow
from gateway.keys.blind_index import IndexKeyring
from gateway.node import Node
from schemas.fields import IndexKind

PAGE_SIZE = 50
EXPORT_MAX_ROWS = 50_000
# Kinds whose entries carry an analyst's query (and sealed search terms).
QUERY_KINDS = ("consult", "disclose", "search_completed")


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(text: str | None) -> datetime | None:
    """A date or date-time from a filter form (HTML date/datetime-local inputs), read as UTC."""
    if not text or not text.strip():
        return None
    try:
        return _aware(datetime.fromisoformat(text.strip()))
    except ValueError:
        return None


@dataclass(frozen=True)
class EntryFilter:
    """The auditor's current filter; every page, chart and export honours the same one."""

    since: datetime | None = None
    until: datetime | None = None
    user: str | None = None
    force: str | None = None
    operation: str | None = None
    purpose: str | None = None
    case_ref: str | None = None
    decision: str | None = None
    record_id: str | None = None

    FIELDS = ("user", "force", "operation", "purpose", "case_ref", "decision", "record_id")

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> EntryFilter:
        values: dict[str, Any] = {}
        for name in cls.FIELDS:
            value = (params.get(name) or "").strip()
            values[name] = value[:128] or None
        until = parse_time(params.get("to"))
        # A bare date as the upper bound means "to the end of that day".
        if until is not None and len((params.get("to") or "").strip()) == 10:
            until += timedelta(days=1)
        return cls(since=parse_time(params.get("from")), until=until, **values)

    def apply(self, statement: Select[Any]) -> Select[Any]:
        columns = {
            "user": AuditIndexRow.user_id,
            "force": AuditIndexRow.actor_force,
            "operation": AuditIndexRow.kind,
            "purpose": AuditIndexRow.purpose,
            "case_ref": AuditIndexRow.case_ref,
            "decision": AuditIndexRow.decision,
        }
        for name, column in columns.items():
            value = getattr(self, name)
            if value is not None:
                statement = statement.where(col(column) == value)
        if self.since is not None:
            statement = statement.where(col(AuditIndexRow.time) >= self.since)
        if self.until is not None:
            statement = statement.where(col(AuditIndexRow.time) < self.until)
        if self.record_id is not None:
            statement = statement.where(
                col(AuditIndexRow.idx).in_(
                    select(col(AuditIndexRecordRow.idx)).where(
                        col(AuditIndexRecordRow.record_id) == self.record_id
                    )
                )
            )
        return statement

    def form_values(self) -> dict[str, str]:
        """The filter as the form shows it (and as export links repeat it)."""
        values = {name: getattr(self, name) or "" for name in self.FIELDS}
        values["from"] = self.since.strftime("%Y-%m-%dT%H:%M") if self.since else ""
        values["to"] = self.until.strftime("%Y-%m-%dT%H:%M") if self.until else ""
        return values

    def query_pairs(self) -> list[tuple[str, str]]:
        return [(key, value) for key, value in self.form_values().items() if value]

    def describe(self) -> str:
        """A short, personal-data-free summary for the audit entry of the page view."""
        return ",".join(key for key, _ in self.query_pairs()) or "none"


@dataclass(frozen=True)
class EntrySummary:
    index: int
    time: datetime
    kind: str
    user_id: str | None
    client_id: str | None
    actor_force: str | None
    purpose: str | None
    case_ref: str | None
    decision: str | None
    recipient_force: str | None
    request_id: str | None

    @classmethod
    def of(cls, row: AuditIndexRow) -> EntrySummary:
        return cls(
            index=row.idx,
            time=_aware(row.time) or row.time,
            kind=row.kind,
            user_id=row.user_id,
            client_id=row.client_id,
            actor_force=row.actor_force,
            purpose=row.purpose,
            case_ref=row.case_ref,
            decision=row.decision,
            recipient_force=row.recipient_force,
            request_id=row.request_id,
        )

    @property
    def who(self) -> str:
        return self.user_id or (f"system {self.client_id}" if self.client_id else "—")


@dataclass
class EntryPage:
    entries: list[EntrySummary]
    next_before: int | None


async def list_entries(
    *,
    session: AsyncSession,
    entry_filter: EntryFilter,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> EntryPage:
    """Newest first, `limit` at a time; `before` is the index the previous page ended on."""
    statement = entry_filter.apply(
        select(AuditIndexRow).order_by(col(AuditIndexRow.idx).desc()).limit(limit + 1)
    )
    if before is not None:
        statement = statement.where(col(AuditIndexRow.idx) < before)
    rows = list((await session.execute(statement)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return EntryPage(
        entries=[EntrySummary.of(row) for row in rows],
        next_before=rows[-1].idx if more and rows else None,
    )


async def filtered_rows(
    *, session: AsyncSession, entry_filter: EntryFilter, limit: int = EXPORT_MAX_ROWS
) -> list[EntrySummary]:
    """All entries matching the filter (oldest first), at most `limit`."""
    statement = entry_filter.apply(
        select(AuditIndexRow).order_by(col(AuditIndexRow.idx).desc()).limit(limit)
    )
    rows = [EntrySummary.of(row) for row in (await session.execute(statement)).scalars()]
    rows.reverse()
    return rows


@dataclass(frozen=True)
class EntryDetail:
    index: int
    raw: bytes
    entry: AuditEntry
    content: dict[str, Any]
    sealed: dict[str, Any] | str | None
    leaf_hash: str

    @property
    def receipts(self) -> list[dict[str, Any]]:
        return [dict(receipt) for receipt in self.entry.receipts]


async def read_entry(node: Node, index: int) -> EntryDetail | None:
    size = await asyncio.to_thread(node.audit.log.size)
    if not 0 <= index < size:
        return None
    raw = await asyncio.to_thread(node.audit.log.entry, index)
    entry = decode_entry(raw)
    return EntryDetail(
        index=index,
        raw=raw,
        entry=entry,
        content=json.loads(raw),
        sealed=node.audit.unseal(entry),
        leaf_hash=leaf_hash(raw).hex(),
    )


CSV_COLUMNS = (
    "index",
    "time",
    "kind",
    "user_id",
    "client_id",
    "actor_force",
    "purpose",
    "case_ref",
    "decision",
    "recipient_force",
    "request_id",
)


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet (CSV injection, OWASP).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_csv(rows: Iterable[EntrySummary]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = [
            str(row.index),
            row.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            row.kind,
            row.user_id or "",
            row.client_id or "",
            row.actor_force or "",
            row.purpose or "",
            row.case_ref or "",
            row.decision or "",
            row.recipient_force or "",
            row.request_id or "",
        ]
        writer.writerow([_csv_safe(value) for value in values])
    return buffer.getvalue()


async def export_ndjson_lines(node: Node, rows: Sequence[EntrySummary]) -> list[bytes]:
    """One line per entry: its index, leaf hash and the entry exactly as the log holds it, so
    each line can be checked against an inclusion proof later."""
    lines = []
    for row in rows:
        raw = await asyncio.to_thread(node.audit.log.entry, row.index)
        head = json.dumps({"index": row.index, "leaf_hash": leaf_hash(raw).hex()})[:-1]
        lines.append(head.encode() + b', "entry": ' + raw + b"}\n")
    return lines


# --- who looked at this? ------------------------------------------------------------------------

IDENTIFIER_FIELDS: dict[str, IndexKind] = {
    "phone": IndexKind.PHONE,
    "vrm": IndexKind.VRM,
    "name": IndexKind.NAME,
    "dob": IndexKind.DOB,
    "postcode": IndexKind.POSTCODE,
    "line_name": IndexKind.LINE_NAME,
}
# A name matches on the whole name, exactly or phonetically (what a search would have matched);
# a single shared given name is not enough to say someone looked at this person.
_NAME_TERM_KINDS = frozenset({"name_full", "name_full_phonetic"})


def search_terms_of(sealed: object) -> dict[str, str]:
    """The search terms a query entry sealed (`{"terms": {...}}`, or the terms at top level)."""
    if not isinstance(sealed, dict):
        return {}
    source = sealed.get("terms") if isinstance(sealed.get("terms"), dict) else sealed
    assert isinstance(source, dict)
    return {
        name: str(source[name])
        for name in IDENTIFIER_FIELDS
        if isinstance(source.get(name), str | int) and str(source[name]).strip()
    }


def _tags(keyring: IndexKeyring, name: str, value: str) -> set[str]:
    kind = IDENTIFIER_FIELDS[name]
    try:
        terms = keyring.terms(kind, value)
    except (ValueError, TypeError):
        return set()
    if kind is IndexKind.NAME:
        terms = [term for term in terms if term.term_kind in _NAME_TERM_KINDS]
    elif kind is IndexKind.POSTCODE:
        terms = [term for term in terms if term.term_kind == "postcode"]
    return {term.tag_hex for term in terms}


@dataclass(frozen=True)
class WhoLookedQuery:
    record_id: str | None = None
    identifiers: Mapping[str, str] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> WhoLookedQuery:
        identifiers = {
            name: (params.get(name) or "").strip()[:200]
            for name in IDENTIFIER_FIELDS
            if (params.get(name) or "").strip()
        }
        return cls(
            record_id=(params.get("record_id") or "").strip()[:64] or None,
            identifiers=identifiers,
            since=parse_time(params.get("from")),
            until=parse_time(params.get("to")),
        )

    @property
    def empty(self) -> bool:
        return self.record_id is None and not self.identifiers


@dataclass(frozen=True)
class WhoLookedMatch:
    entry: EntrySummary
    how: str
    justification: str | None


@dataclass
class WhoLookedAnswer:
    matches: list[WhoLookedMatch]
    scanned: int
    truncated: bool
    unusable: list[str]


async def who_looked(
    *, node: Node, session: AsyncSession, query: WhoLookedQuery, scan_limit: int
) -> WhoLookedAnswer:
    """Every query entry that matched or disclosed a record or identifier, newest first.

    By record id: the index of record references (entries list the record versions they
    touched). By identifier: the query entries in the window are unsealed (at most `scan_limit`,
    newest first) and their search terms compared with the identifier under this force's
    blind-index keys, so equivalent spellings (07700 900123 / +447700900123, "AB12 CDE" /
    "ab12cde", swapped or phonetically equal names) match as the search itself would have.
    """
    found: dict[int, WhoLookedMatch] = {}
    base = WhoLookedQuery(since=query.since, until=query.until)
    window = EntryFilter(since=base.since, until=base.until)
    if query.record_id is not None:
        by_record = EntryFilter(since=base.since, until=base.until, record_id=query.record_id)
        for row in await filtered_rows(session=session, entry_filter=by_record, limit=5000):
            found[row.index] = WhoLookedMatch(row, f"record {query.record_id}", None)
    keyring = node.keys.index
    wanted = {name: _tags(keyring, name, value) for name, value in query.identifiers.items()}
    unusable = [name for name, tags in wanted.items() if not tags]
    wanted = {name: tags for name, tags in wanted.items() if tags}
    scanned = 0
    truncated = False
    if wanted:
        statement = window.apply(
            select(AuditIndexRow)
            .where(col(AuditIndexRow.kind).in_(QUERY_KINDS))
            .order_by(col(AuditIndexRow.idx).desc())
            .limit(scan_limit + 1)
        )
        rows = [EntrySummary.of(row) for row in (await session.execute(statement)).scalars()]
        truncated = len(rows) > scan_limit
        rows = rows[:scan_limit]
        for row in rows:
            raw = await asyncio.to_thread(node.audit.log.entry, row.index)
            entry = decode_entry(raw)
            if entry.sealed is None:
                continue
            scanned += 1
            sealed = node.audit.unseal(entry)
            terms = search_terms_of(sealed)
            # Every identifier the auditor gave must match a term the query used.
            matched = [
                name
                for name, tags in wanted.items()
                if name in terms and _tags(keyring, name, terms[name]) & tags
            ]
            if len(matched) == len(wanted):
                justification = sealed.get("justification") if isinstance(sealed, dict) else None
                how = "searched " + " + ".join(matched)
                previous = found.get(row.index)
                if previous is not None:
                    how = f"{previous.how}; {how}"
                found[row.index] = WhoLookedMatch(
                    row, how, justification if isinstance(justification, str) else None
                )
    for index, match in list(found.items()):
        if match.justification is None and match.entry.kind in QUERY_KINDS:
            detail = await read_entry(node, index)
            if detail is not None and isinstance(detail.sealed, dict):
                value = detail.sealed.get("justification")
                if isinstance(value, str):
                    found[index] = WhoLookedMatch(match.entry, match.how, value)
    matches = sorted(found.values(), key=lambda m: m.entry.index, reverse=True)
    return WhoLookedAnswer(
        matches=matches, scanned=scanned, truncated=truncated, unusable=sorted(unusable)
    )
