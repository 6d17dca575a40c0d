"""Partner-facing endpoints (`/federation/v1/...`): every request and answer is signed.

A request that fails verification (unknown or suspended member, bad signature, replay, expired,
body hash mismatch) is refused with 401 problem+json and audited as an authentication failure.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ValidationError

from audit import TreeSizeError
from audit.merkle import leaf_hash
from audit.store.base import AuditStoreError, AuditUnavailable
from gateway.deps import NodeDep, audit_auth_failure
from gateway.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
)
from gateway.federation.members import member_keys, require_member
from gateway.federation.payloads import (
    CosignAnswer,
    CosignRequest,
    PartnerAnswer,
    PartnerDiscloseRequest,
    PartnerSearchRequest,
)
from gateway.federation.protocol import (
    SIGNATURE_HEADER,
    ProtocolError,
    RequestClaims,
    sign_response,
    verify_request,
)
from gateway.federation.runtime import FederationRuntime, get_federation
from gateway.federation.service import answer_disclose, answer_search
from gateway.federation.witness import ForkDetected, WitnessError, cosign_checkpoint
from gateway.node import Node

router = APIRouter(prefix="/federation/v1", tags=["nodes"])
log = structlog.get_logger(__name__)
PROBLEM: dict[int | str, dict[str, Any]] = {401: {"content": {"application/problem+json": {}}}}
Runtime = Annotated[FederationRuntime, Depends(get_federation)]


async def _verified(
    request: Request, node: Node, runtime: FederationRuntime
) -> tuple[RequestClaims, bytes]:
    body = await request.body()
    token = request.headers.get(SIGNATURE_HEADER)
    try:
        if not token:
            raise ProtocolError("unsigned", "the request carries no federation signature")
        claims = verify_request(
            token,
            body,
            audience=node.settings.force_code,
            method=request.method,
            path=request.url.path,
            keys_of=lambda sender: member_keys(node, sender),
            replay_cache=runtime.replay,
        )
    except ProtocolError as exc:
        await audit_auth_failure(node, request, f"federation:{exc.reason}")
        log.warning("federation.request_refused", reason=exc.reason)
        raise Unauthenticated(str(exc), extra={"reason": exc.reason}) from exc
    return claims, body


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise BadRequest(
            "the federation request body is not valid",
            extra={
                "errors": exc.errors(include_url=False, include_context=False, include_input=False)
            },
        ) from exc


def _signed(
    node: Node, claims: RequestClaims, payload: BaseModel | dict[str, Any], status: int = 200
) -> Response:
    body = (
        payload.model_dump_json().encode()
        if isinstance(payload, BaseModel)
        else json.dumps(payload, separators=(",", ":")).encode()
    )
    token = sign_response(
        node.signing_key,
        sender=node.settings.force_code,
        audience=claims.sender,
        request_token_hash=claims.request_hash,
        status=status,
        body=body,
    )
    return Response(
        content=body,
        status_code=status,
        media_type="application/json",
        headers={SIGNATURE_HEADER: token, "Cache-Control": "no-store"},
    )


def _speaks_for_own_force(claims: RequestClaims, force: str) -> None:
    # A node vouches only for its own force's analysts.
    if force != claims.sender:
        raise Forbidden("a node may only ask on behalf of its own force's analysts")


@router.post(
    "/search",
    summary="A partner node's signed search on behalf of one of its analysts",
    response_model=PartnerAnswer,
    responses=PROBLEM,
)
async def partner_search(request: Request, node: NodeDep, runtime: Runtime) -> Response:
    claims, body = await _verified(request, node, runtime)
    search = _parse(PartnerSearchRequest, body)
    _speaks_for_own_force(claims, search.principal.force)
    try:
        answer = await answer_search(node, claims.sender, search)
    except AuditUnavailable as exc:
        # Fail closed: nothing leaves unless the disclosure entry is durable.
        raise ServiceUnavailable("the audit log is unavailable; nothing is disclosed") from exc
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    return _signed(node, claims, answer)


@router.post(
    "/disclose",
    summary="A partner node's signed request for one record (step 2 after a hit)",
    response_model=PartnerAnswer,
    responses=PROBLEM,
)
async def partner_disclose(request: Request, node: NodeDep, runtime: Runtime) -> Response:
    claims, body = await _verified(request, node, runtime)
    disclose = _parse(PartnerDiscloseRequest, body)
    _speaks_for_own_force(claims, disclose.principal.force)
    try:
        answer = await answer_disclose(node, claims.sender, disclose)
    except AuditUnavailable as exc:
        raise ServiceUnavailable("the audit log is unavailable; nothing is disclosed") from exc
    return _signed(node, claims, answer)


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    summary="This node's latest signed checkpoint (C2SP signed note)",
)
async def federation_checkpoint(node: NodeDep) -> PlainTextResponse:
    stored = await asyncio.to_thread(node.audit.log.latest_checkpoint)
    text = (
        stored.note
        if stored is not None
        else (await asyncio.to_thread(node.audit.log.checkpoint)).to_text()
    )
    return PlainTextResponse(text, headers={"Cache-Control": "no-store"})


class ProofOut(BaseModel):
    index: int
    size: int
    leaf_hash: str
    proof: list[str]


@router.get(
    "/proof/inclusion",
    response_model=ProofOut,
    summary="Inclusion proof of one entry, with the hash of the entry as stored now",
)
async def federation_inclusion(
    node: NodeDep,
    index: Annotated[int, Query(ge=0)],
    size: Annotated[int, Query(ge=1)],
) -> ProofOut:
    # Public like the auditors' proof endpoint: hashes only, no entry content.
    if index >= size:
        raise BadRequest("index must be smaller than size.")
    try:
        raw = await asyncio.to_thread(node.audit.log.entry, index)
        proof = await asyncio.to_thread(node.audit.log.inclusion_proof, index, size)
    except (TreeSizeError, AuditStoreError) as exc:
        raise NotFound(f"entry {index} is not in this log: {exc}") from exc
    return ProofOut(
        index=index, size=size, leaf_hash=leaf_hash(raw).hex(), proof=[p.hex() for p in proof]
    )


@router.post(
    "/cosign",
    summary="Witness a partner's checkpoint: check consistency, then cosign (C2SP cosignature)",
    response_model=CosignAnswer,
    responses=PROBLEM,
)
async def partner_cosign(request: Request, node: NodeDep, runtime: Runtime) -> Response:
    claims, body = await _verified(request, node, runtime)
    cosign = _parse(CosignRequest, body)
    member = require_member(node, claims.sender)
    try:
        proof = [bytes.fromhex(p) for p in cosign.proof]
    except ValueError as exc:
        raise BadRequest("proof hashes are hex") from exc
    try:
        cosigned = await cosign_checkpoint(node, member, cosign.old_size, proof, cosign.checkpoint)
    except WitnessError as exc:
        if exc.known_size is not None:
            # 409 with the size this witness stands at (as C2SP tlog-witness answers), signed so
            # that the log can trust the size and send a proof from it.
            return _signed(
                node, claims, {"known_size": exc.known_size, "detail": str(exc)}, status=409
            )
        if exc.status == 403:
            raise Forbidden(str(exc)) from exc
        raise Conflict(str(exc), extra={"fork": isinstance(exc, ForkDetected)}) from exc
    return _signed(node, claims, CosignAnswer(cosigned=cosigned, witness=node.settings.force_code))
