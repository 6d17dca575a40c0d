"""Dependency aliases endpoints declare: the node, a database session, the authenticated caller.

Endpoints never parse tokens themselves; they ask for `RecordsWrite`, `RecordsRead`, `Auditor`...
and receive a typed principal, or the request ends in 401/403 (and an audited auth failure).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

import structlog
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from audit.entry import Actor, SecurityEvent
from audit.store.base import AuditUnavailable
from gateway.errors import Forbidden, ServiceUnavailable, Unauthenticated
from gateway.identity.clients import get_client
from gateway.identity.principals import AuditorPrincipal, SystemPrincipal
from gateway.identity.tokens import InvalidToken, verify_token
from gateway.node import Node

log = structlog.get_logger(__name__)


async def get_node(request: Request) -> Node:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
    node: Node | None = getattr(request.app.state, "node", None)
    if node is None:
        raise ServiceUnavailable("The node is starting or stopping.")
    return node


NodeDep = Annotated[Node, Depends(get_node)]


async def get_session(node: NodeDep) -> AsyncIterator[AsyncSession]:
    async for session in node.db.session():
        yield session


# "function" scope: the transaction commits before the response is sent, so a client is never
# told a write succeeded that did not commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


async def audit_auth_failure(
    node: Node, request: Request, reason: str, *, actor: Actor | None = None
) -> None:
    """Log a refused authentication. The credential itself never enters the log."""
    try:
        await node.audit.record(
            SecurityEvent.AUTH_FAILURE,
            actor=actor,
            request_id=request_id_of(request),
            decision="denied",
            purpose=reason[:32],
        )
    except AuditUnavailable:
        log.warning("audit.auth_failure_not_logged", reason=reason)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="police-gateway"'}


class SystemAuthenticator:
    """Accepts this node's own access tokens for force systems, with the required scopes."""

    def __init__(self, *required_scopes: str) -> None:
        self.required = frozenset(required_scopes)

    async def __call__(self, request: Request, node: NodeDep) -> SystemPrincipal:
        token = _bearer(request)
        if token is None:
            await audit_auth_failure(node, request, "missing_token")
            raise Unauthenticated("A bearer access token is required.", headers=_CHALLENGE)
        issuer = node.settings.node_url
        try:
            claims = verify_token(token, [node.signing_key], issuer=issuer, audience=issuer)
        except InvalidToken as exc:
            await audit_auth_failure(node, request, "invalid_token")
            raise Unauthenticated(str(exc), headers=_CHALLENGE) from exc
        async with node.db.sessions() as session:
            client = await get_client(session=session, client_id=claims.subject)
        if client is None or client.disabled:
            await audit_auth_failure(node, request, "client_revoked")
            raise Unauthenticated("The client behind this token is not active.", headers=_CHALLENGE)
        principal = SystemPrincipal(
            client_id=claims.subject, force=node.settings.force_code, scopes=claims.scopes
        )
        missing = self.required - claims.scopes
        if missing:
            # An authenticated system asking for what its token does not allow: refused and
            # logged like a failed authentication, naming the client (reason insufficient_scope).
            await audit_auth_failure(node, request, "insufficient_scope", actor=principal.actor())
            raise Forbidden(f"This call needs the scope(s): {', '.join(sorted(missing))}.")
        return principal


RecordsWrite = Annotated[SystemPrincipal, Depends(SystemAuthenticator("records:write"))]
RecordsRead = Annotated[SystemPrincipal, Depends(SystemAuthenticator("records:read"))]


async def require_auditor(request: Request, node: NodeDep) -> AuditorPrincipal:
    """Until analyst identity lands, auditors present the node's configured auditor token."""
    token = _bearer(request)
    expected = node.settings.auditor_token.get_secret_value().encode()
    if token is None or not hmac.compare_digest(token.encode(), expected):
        await audit_auth_failure(node, request, "auditor_token")
        raise Unauthenticated("The auditor token is missing or wrong.", headers=_CHALLENGE)
    return AuditorPrincipal(user_id="auditor", force=node.settings.force_code)


Auditor = Annotated[AuditorPrincipal, Depends(require_auditor)]
