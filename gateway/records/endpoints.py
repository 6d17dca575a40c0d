"""Sync API for force systems: PUT/GET/DELETE one record, bulk NDJSON, and the change feed."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from gateway.deps import NodeDep, RecordsRead, RecordsWrite, SessionDep, request_id_of
from gateway.errors import BadRequest, Conflict, PayloadTooLarge, UnprocessableContent
from gateway.records import service
from gateway.records.payloads import (
    BulkResult,
    ChangePage,
    EraseResult,
    StoredRecordResponse,
    WriteResult,
)
from gateway.records.tables import IdempotencyRow
from schemas import RecordValidationError

router = APIRouter(tags=["force systems"])
log = structlog.get_logger(__name__)

RecordId = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", description="Record id"),
]
PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
MAX_BULK_LINES = 200_000


def _etag(version: int) -> str:
    return f'"{version}"'


def _parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    raw = value.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    if not raw.isdigit():
        raise BadRequest('If-Match must be the ETag the node returned, e.g. "3".')
    return int(raw)


def _validation_problem(exc: RecordValidationError) -> UnprocessableContent:
    return UnprocessableContent(
        f"The record failed validation ({len(exc.errors)} problem(s)).",
        extra={"errors": [{"pointer": p, "detail": d} for p, d in exc.errors]},
    )


@router.put(
    "/v1/records/{record_id}",
    response_model=WriteResult,
    status_code=200,
    summary="Create or replace one of this force's records",
    responses={201: {"description": "Created"}, 403: PROBLEM, 412: PROBLEM, 422: PROBLEM},
)
async def put_record(
    record_id: RecordId,
    request: Request,
    response: Response,
    principal: RecordsWrite,
    node: NodeDep,
    session: SessionDep,
    data: Annotated[dict[str, Any], Body(description="A record (schemas/json/v1)")],
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> WriteResult:
    try:
        outcome = await service.put_record(
            session=session,
            keys=node.keys,
            audit=node.audit,
            principal=principal,
            record_id=record_id,
            data=data,
            if_match=_parse_if_match(if_match),
            request_id=request_id_of(request),
        )
    except RecordValidationError as exc:
        raise _validation_problem(exc) from exc
    response.headers["ETag"] = _etag(outcome.version)
    if outcome.status == "created":
        response.status_code = 201
    log.info("records.stored", record_id=record_id, status=outcome.status)
    return WriteResult(record_id=outcome.record_id, version=outcome.version, status=outcome.status)


@router.get(
    "/v1/records/{record_id}",
    response_model=StoredRecordResponse,
    summary="Read one of this force's records back, decrypted",
    responses={404: PROBLEM, 410: PROBLEM},
)
async def get_record(
    record_id: RecordId,
    request: Request,
    response: Response,
    principal: RecordsRead,
    node: NodeDep,
    session: SessionDep,
) -> dict[str, Any]:
    record = await service.read_own_record(
        node=node,
        principal=principal,
        record_id=record_id,
        request_id=request_id_of(request),
    )
    response.headers["ETag"] = _etag(int(record["version"]))
    response.headers["Cache-Control"] = "no-store"
    return record


@router.delete(
    "/v1/records/{record_id}",
    response_model=EraseResult,
    summary="Erase a record: its data key is destroyed (crypto-shredding)",
    responses={404: PROBLEM, 410: PROBLEM},
)
async def delete_record(
    record_id: RecordId,
    request: Request,
    principal: RecordsWrite,
    node: NodeDep,
    session: SessionDep,
    reason: Annotated[
        str, Query(description="retention_review | erasure | error | duplicate")
    ] = "erasure",
) -> EraseResult:
    version = await service.erase(
        session=session,
        keys=node.keys,
        audit=node.audit,
        principal=principal,
        record_id=record_id,
        reason=reason,
        request_id=request_id_of(request),
    )
    log.info("records.erased", record_id=record_id)
    return EraseResult(record_id=record_id, erased_version=version, reason=reason)


async def _ndjson_lines(request: Request, max_line_bytes: int, digest: Any) -> AsyncIterator[bytes]:
    """Split the streamed body into lines, hashing it as it goes; bounded memory per line."""
    buffer = bytearray()
    line_no = 0
    async for chunk in request.stream():
        digest.update(chunk)
        buffer.extend(chunk)
        start = 0
        while True:
            cut = buffer.find(b"\n", start)
            if cut < 0:
                break
            line_no += 1
            line = bytes(buffer[start:cut])
            start = cut + 1
            if len(line) > max_line_bytes:
                raise PayloadTooLarge(f"Line {line_no} is longer than {max_line_bytes} bytes.")
            yield line
        del buffer[:start]  # once per received chunk, not once per line
        if len(buffer) > max_line_bytes:
            raise PayloadTooLarge(f"Line {line_no + 1} is longer than {max_line_bytes} bytes.")
    if buffer.strip():
        yield bytes(buffer)


@router.post(
    "/v1/records/bulk",
    response_model=BulkResult,
    summary="Load many records from an NDJSON body (streamed)",
    description=(
        "One record per line. Each line is accepted or rejected on its own unless `atomic=true`, "
        "which makes the whole upload all-or-nothing. With an `Idempotency-Key`, sending the same "
        "body again returns the first result and changes nothing."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    },
    responses={409: PROBLEM, 413: PROBLEM},
)
async def bulk(
    request: Request,
    principal: RecordsWrite,
    node: NodeDep,
    session: SessionDep,
    atomic: Annotated[bool, Query(description="All lines or none")] = False,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=128, min_length=8)
    ] = None,
) -> Any:
    digest = hashlib.sha256()
    if idempotency_key:
        # Keys are remembered for a window only: past it, this client's old keys are forgotten
        # (which also bounds the table, one row per keyed upload) and a key starts afresh.
        window = timedelta(hours=node.settings.idempotency_key_hours)
        await session.execute(
            delete(IdempotencyRow).where(
                col(IdempotencyRow.client_id) == principal.client_id,
                col(IdempotencyRow.created_at) < datetime.now(UTC) - window,
            )
        )
        previous = (
            await session.execute(
                select(IdempotencyRow).where(
                    col(IdempotencyRow.client_id) == principal.client_id,
                    col(IdempotencyRow.key) == idempotency_key,
                )
            )
        ).scalar_one_or_none()
        if previous is not None:
            async for chunk in request.stream():
                digest.update(chunk)
            if digest.hexdigest() != previous.request_sha256:
                raise Conflict("This Idempotency-Key was used with a different body.")
            return JSONResponse(
                previous.response,
                status_code=previous.status_code,
                headers={"Idempotent-Replayed": "true"},
            )
    report = await service.bulk_load(
        session=session,
        keys=node.keys,
        audit=node.audit,
        principal=principal,
        lines=_ndjson_lines(request, node.settings.max_ndjson_line_bytes, digest),
        atomic=atomic,
        max_lines=MAX_BULK_LINES,
        max_line_bytes=node.settings.max_ndjson_line_bytes,
        request_id=request_id_of(request),
        workers=node.bulk_workers,
    )
    # Already in BulkResult's JSON form; answered as is (below), so the report is not validated
    # again as the response model.
    body = report.as_json()
    if idempotency_key:
        session.add(
            IdempotencyRow(
                client_id=principal.client_id,
                key=idempotency_key,
                request_sha256=digest.hexdigest(),
                status_code=200,
                response=body,
                created_at=datetime.now(UTC),
            )
        )
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict("A request with this Idempotency-Key is already in progress.") from exc
    log.info(
        "records.bulk_loaded",
        accepted=report.accepted,
        rejected=report.rejected,
        atomic=atomic,
    )
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/v1/changes",
    response_model=ChangePage,
    summary="This force's changes in order, from an opaque cursor",
    responses={400: PROBLEM},
)
async def changes(
    principal: RecordsRead,
    session: SessionDep,
    since: Annotated[str | None, Query(max_length=64, description="Cursor from a page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ChangePage:
    items, cursor = await service.changes_since(session=session, cursor=since, limit=limit)
    return ChangePage.model_validate({"changes": items, "next_cursor": cursor})
