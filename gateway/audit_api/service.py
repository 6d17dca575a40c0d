"""Writing the node's audit entries: one per s.62 operation and per security event.

Fail closed: `NodeAudit.record` returns only when the entry is durable in the Merkle log, and
raises `AuditUnavailable` otherwise; callers disclose nothing unless it returned. Appends go
through the log's own group-commit writer, never through the request's database session, so a
request that later fails or is denied is still logged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col

from audit.entry import (
    Actor,
    AuditEntry,
    EntryKind,
    RecordRef,
    canonical_json,
    decode_entry,
    encode_entry,
    sealing_context,
)
from audit.errors import PayloadShredded
from audit.log import AuditLog, Receipt
from audit.sealing import KeyringSealer
from gateway.audit_api.keyring import AuditKeyFile, month_key_id
from gateway.audit_api.tables import AuditIndexRecordRow, AuditIndexRow

log = structlog.get_logger(__name__)

SHREDDED = "[shredded]"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


class NodeAudit:
    def __init__(
        self,
        *,
        audit_log: AuditLog,
        key_file: AuditKeyFile,
        node: str,
        sessions: async_sessionmaker[Any],
    ) -> None:
        self.log = audit_log
        self.key_file = key_file
        self.sealer: KeyringSealer = key_file.load_sealer()
        self.node = node
        self.sessions = sessions
        self._index_lock = asyncio.Lock()

    def _current_sealer(self, now: datetime) -> KeyringSealer:
        if self.sealer.current_key_id != month_key_id(now):
            self.sealer = self.key_file.load_sealer(now)
        return self.sealer

    async def record(
        self,
        kind: EntryKind,
        *,
        actor: Actor | None = None,
        request_id: str | None = None,
        purpose: str | None = None,
        case_ref: str | None = None,
        query_fingerprint: str | None = None,
        decision: str | None = None,
        policy_ids: Sequence[str] = (),
        policy_hash: str | None = None,
        records: Iterable[RecordRef] = (),
        fields_withheld: Sequence[str] = (),
        recipient_force: str | None = None,
        partner_request_id: str | None = None,
        receipts: Sequence[Mapping[str, Any]] = (),
        sealed: Mapping[str, Any] | None = None,
        checkpoint: bool = False,
    ) -> Receipt:
        """Append one entry and wait until it is durable. Raises AuditUnavailable otherwise.

        With `checkpoint=True` the receipt also holds a signed checkpoint that includes the entry
        (signed once per group commit, stored in the same transaction)."""
        now = datetime.now(UTC)
        sealed_payload = None
        if sealed:
            sealed_payload = self._current_sealer(now).seal(
                canonical_json(dict(sealed)), sealing_context(self.node, request_id)
            )
        entry = AuditEntry(
            time=now,
            node=self.node,
            kind=kind,
            actor=actor,
            purpose=purpose,
            case_ref=case_ref,
            query_fingerprint=query_fingerprint,
            decision=decision,
            policy_ids=tuple(policy_ids),
            policy_hash=policy_hash,
            records=tuple(records),
            fields_withheld=tuple(fields_withheld),
            recipient_force=recipient_force,
            request_id=request_id,
            partner_request_id=partner_request_id,
            receipts=tuple(receipts),
            sealed=sealed_payload,
        )
        # The searchable index is derived data, brought level with the log when auditors query it
        # (`rebuild_index`); writing it here would contend with the caller's open transaction.
        return await self.log.append_async(encode_entry(entry), checkpoint=checkpoint)

    def unseal(self, entry: AuditEntry) -> dict[str, Any] | str | None:
        """The sealed payload of an entry as JSON, `SHREDDED` when its key is gone."""
        if entry.sealed is None:
            return None
        try:
            plain = self.sealer.unseal(entry.sealed, sealing_context(entry.node, entry.request_id))
        except PayloadShredded:
            return SHREDDED
        value = json.loads(plain)
        return value if isinstance(value, dict) else {"value": value}

    async def _index(self, items: Sequence[tuple[int, AuditEntry]]) -> None:
        async with self.sessions() as session:
            for idx, entry in items:
                actor = entry.actor
                session.add(
                    AuditIndexRow(
                        idx=idx,
                        time=_utc(entry.time),
                        kind=str(entry.kind),
                        user_id=actor.user_id if actor else None,
                        client_id=actor.client_id if actor else None,
                        actor_force=actor.force if actor else None,
                        purpose=entry.purpose,
                        case_ref=entry.case_ref,
                        decision=entry.decision,
                        recipient_force=entry.recipient_force,
                        request_id=entry.request_id,
                    )
                )
                seen: set[str] = set()
                for ref in entry.records:
                    if ref.record_id in seen:
                        continue
                    seen.add(ref.record_id)
                    session.add(
                        AuditIndexRecordRow(idx=idx, record_id=ref.record_id, force=ref.force)
                    )
            await session.commit()

    async def rebuild_index(self, *, batch: int = 2000) -> int:
        """Bring the searchable index level with the log. Returns the rows added."""
        async with self._index_lock:
            return await self._rebuild_index(batch)

    async def _rebuild_index(self, batch: int) -> int:
        async with self.sessions() as session:
            indexed = (await session.execute(select(func.max(AuditIndexRow.idx)))).scalar()
        start = 0 if indexed is None else int(indexed) + 1
        size = await asyncio.to_thread(self.log.size)
        added = 0
        for chunk_start in range(start, size, batch):
            chunk_end = min(size, chunk_start + batch)
            raw = await asyncio.to_thread(self.log.entries, chunk_start, chunk_end)
            items = [(chunk_start + i, decode_entry(data)) for i, data in enumerate(raw)]
            async with self.sessions() as session:
                await session.execute(
                    delete(AuditIndexRecordRow).where(col(AuditIndexRecordRow.idx) >= chunk_start)
                )
                await session.execute(
                    delete(AuditIndexRow).where(col(AuditIndexRow.idx) >= chunk_start)
                )
                await session.commit()
            await self._index(items)
            added += len(items)
        if added:
            log.info("audit.index_rebuilt", count=added)
        return added
