"""The auditors' API: entries with filters, checkpoints, proofs and a streaming export.

Every read of the audit log is itself an audit entry (`audit_access`), written before the answer;
if it cannot be written, the auditor gets 503 and no data (s.62 logs are personal data too).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import col

from audit import TreeSizeError
from audit.checkpoint import VerifierKey
from audit.entry import SecurityEvent, decode_entry
from audit.merkle import leaf_hash
from audit.store.base import AuditUnavailable
from audit.verify import export_line
from gateway.audit_api.tables import AuditIndexRecordRow, AuditIndexRow
from gateway.cursors import decode_cursor, encode_cursor
from gateway.deps import Auditor, NodeDep, SessionDep, request_id_of
from gateway.errors import BadRequest, NotFound, ServiceUnavailable
from gateway.identity.principals import AuditorPrincipal
from gateway.node import Node

router = APIRouter(tags=["auditors"])
log = structlog.get_logger(__name__)
PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


class AuditEntryView(BaseModel):
    index: int
    leaf_hash: str
    entry: dict[str, Any]
    sealed_payload: dict[str, Any] | str | None = Field(
        default=None,
        description=(
            "The entry's sealed payload (search terms, justification, truncation), unsealed for"
            " the auditor"
        ),
    )


class EntryPage(BaseModel):
    entries: list[AuditEntryView]
    next_cursor: str | None


class InclusionProof(BaseModel):
    index: int
    size: int
    leaf_hash: str
    root: str
    proof: list[str]


class ConsistencyProof(BaseModel):
    from_size: int = Field(alias="from")
    to_size: int = Field(alias="to")
    old_root: str
    new_root: str
    proof: list[str]

    model_config = {"populate_by_name": True}


async def _log_access(node: Node, request: Request, auditor: AuditorPrincipal, what: str) -> None:
    try:
        await node.audit.record(
            SecurityEvent.AUDIT_ACCESS,
            actor=auditor.actor(),
            request_id=request_id_of(request),
            purpose=what,
        )
    except AuditUnavailable as exc:
        raise ServiceUnavailable("The audit log cannot record this access; try again.") from exc


def _view(node: Node, index: int, raw: bytes, *, unseal: bool) -> AuditEntryView:

    from audit.merkle import leaf_hash

    entry = decode_entry(raw)
    return AuditEntryView(
        index=index,
        leaf_hash=leaf_hash(raw).hex(),
        entry=json.loads(raw),
        sealed_payload=node.audit.unseal(entry) if unseal else None,
    )


AUDIT_CURSOR = "a1"


@router.get(
    "/v1/audit/entries",
    response_model=EntryPage,
    summary="Audit entries, newest first, with filters",
    responses={401: PROBLEM, 503: PROBLEM},
)
async def list_entries(
    request: Request,
    auditor: Auditor,
    node: NodeDep,
    session: SessionDep,
    since: Annotated[datetime | None, Query(alias="from", description="UTC, inclusive")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="UTC, exclusive")] = None,
    user: Annotated[str | None, Query(max_length=128)] = None,
    force: Annotated[str | None, Query(max_length=8)] = None,
    operation: Annotated[str | None, Query(max_length=32)] = None,
    purpose: Annotated[str | None, Query(max_length=32)] = None,
    case_ref: Annotated[str | None, Query(max_length=64)] = None,
    record_id: Annotated[str | None, Query(max_length=64)] = None,
    decision: Annotated[str | None, Query(max_length=32)] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EntryPage:
    await _log_access(node, request, auditor, "list_entries")
    await node.audit.rebuild_index()
    statement = (
        select(col(AuditIndexRow.idx)).order_by(col(AuditIndexRow.idx).desc()).limit(limit + 1)
    )
    before = decode_cursor(AUDIT_CURSOR, cursor) if cursor is not None else None
    if before is not None:
        statement = statement.where(col(AuditIndexRow.idx) < before)
    filters = {
        AuditIndexRow.user_id: user,
        AuditIndexRow.actor_force: force,
        AuditIndexRow.kind: operation,
        AuditIndexRow.purpose: purpose,
        AuditIndexRow.case_ref: case_ref,
        AuditIndexRow.decision: decision,
    }
    for column, value in filters.items():
        if value is not None:
            statement = statement.where(col(column) == value)
    if since is not None:
        statement = statement.where(col(AuditIndexRow.time) >= since)
    if until is not None:
        statement = statement.where(col(AuditIndexRow.time) < until)
    if record_id is not None:
        statement = statement.where(
            col(AuditIndexRow.idx).in_(
                select(col(AuditIndexRecordRow.idx)).where(
                    col(AuditIndexRecordRow.record_id) == record_id
                )
            )
        )
    indexes = list((await session.execute(statement)).scalars())
    more = len(indexes) > limit
    indexes = indexes[:limit]
    views = []
    for idx in indexes:
        raw = await asyncio.to_thread(node.audit.log.entry, idx)
        views.append(_view(node, idx, raw, unseal=False))
    return EntryPage(
        entries=views, next_cursor=encode_cursor(AUDIT_CURSOR, indexes[-1]) if more else None
    )


@router.get(
    "/v1/audit/entries/{index}",
    response_model=AuditEntryView,
    summary="One audit entry, with its sealed payload opened for the auditor",
    responses={401: PROBLEM, 404: PROBLEM},
)
async def get_entry(
    index: Annotated[int, Path(ge=0)], request: Request, auditor: Auditor, node: NodeDep
) -> AuditEntryView:
    size = await asyncio.to_thread(node.audit.log.size)
    if index >= size:
        raise NotFound(f"The log has {size} entries; there is no entry {index}.")
    await _log_access(node, request, auditor, "read_entry")
    raw = await asyncio.to_thread(node.audit.log.entry, index)
    return _view(node, index, raw, unseal=True)


@router.get(
    "/v1/audit/checkpoint",
    response_class=PlainTextResponse,
    summary="The latest signed checkpoint (C2SP signed note)",
    responses={200: {"content": {"text/plain": {}}}},
)
async def checkpoint(node: NodeDep) -> PlainTextResponse:
    # Public by design: partners and witnesses need it, and it holds no personal data.
    stored = await asyncio.to_thread(node.audit.log.latest_checkpoint)
    text = (
        stored.note
        if stored is not None
        else (await asyncio.to_thread(node.audit.log.checkpoint)).to_text()
    )
    vkey = VerifierKey(node.settings.log_origin, 0x01, node.signing_key.public_key).to_text()
    return PlainTextResponse(text, headers={"X-Verifier-Key": vkey, "Cache-Control": "no-store"})


@router.get(
    "/v1/audit/proof/inclusion",
    response_model=InclusionProof,
    summary="Inclusion proof of entry `index` in the tree of `size`",
    responses={400: PROBLEM},
)
async def inclusion(
    node: NodeDep,
    index: Annotated[int, Query(ge=0)],
    size: Annotated[int, Query(ge=1)],
) -> InclusionProof:
    if index >= size:
        raise BadRequest("index must be smaller than size.")
    try:
        proof = await asyncio.to_thread(node.audit.log.inclusion_proof, index, size)
        root = await asyncio.to_thread(node.audit.log.root, size)
        raw = await asyncio.to_thread(node.audit.log.entry, index)
    except TreeSizeError as exc:
        raise BadRequest(str(exc)) from exc
    return InclusionProof(
        index=index,
        size=size,
        leaf_hash=leaf_hash(raw).hex(),
        root=root.hex(),
        proof=[p.hex() for p in proof],
    )


@router.get(
    "/v1/audit/proof/consistency",
    response_model=ConsistencyProof,
    summary="Consistency proof between tree sizes `from` and `to`",
    responses={400: PROBLEM},
)
async def consistency(
    node: NodeDep,
    from_size: Annotated[int, Query(alias="from", ge=0)],
    to_size: Annotated[int, Query(alias="to", ge=1)],
) -> ConsistencyProof:
    if from_size > to_size:
        raise BadRequest("`from` must not exceed `to`.")
    try:
        proof = await asyncio.to_thread(node.audit.log.consistency_proof, from_size, to_size)
        old_root = await asyncio.to_thread(node.audit.log.root, from_size)
        new_root = await asyncio.to_thread(node.audit.log.root, to_size)
    except TreeSizeError as exc:
        raise BadRequest(str(exc)) from exc
    return ConsistencyProof(
        from_size=from_size,
        to_size=to_size,
        old_root=old_root.hex(),
        new_root=new_root.hex(),
        proof=[p.hex() for p in proof],
    )


@router.get(
    "/v1/audit/export",
    summary="The whole log as NDJSON, up to a freshly signed checkpoint",
    description="The checkpoint the export matches is in the `X-Checkpoint` header (base64).",
    responses={200: {"content": {"application/x-ndjson": {}}}, 401: PROBLEM},
)
async def export(request: Request, auditor: Auditor, node: NodeDep) -> StreamingResponse:
    await _log_access(node, request, auditor, "export")
    note = await asyncio.to_thread(node.audit.log.checkpoint)
    size = int(note.to_text().split("\n")[1])

    async def lines() -> AsyncIterator[bytes]:
        chunk = 1000
        for start in range(0, size, chunk):
            raws = await asyncio.to_thread(node.audit.log.entries, start, min(size, start + chunk))
            yield b"".join(export_line(start + i, raw) for i, raw in enumerate(raws))

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={
            "X-Checkpoint": base64.b64encode(note.to_text().encode()).decode(),
            "Cache-Control": "no-store",
        },
    )
