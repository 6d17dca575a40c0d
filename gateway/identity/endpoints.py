"""`POST /oauth/token`: OAuth 2.0 client credentials for force systems."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from audit.entry import Actor
from gateway.deps import NodeDep, audit_auth_failure
from gateway.errors import PROBLEM_MEDIA_TYPE, problem_body
from gateway.identity.clients import get_client, is_locked, record_failure, record_success
from gateway.identity.oauth import claimed_client_id, run_token_grant

router = APIRouter(tags=["force systems"])
log = structlog.get_logger(__name__)


def _oauth_error(
    status: int, error: str, description: str, request: Request, headers: dict[str, str] | None
) -> JSONResponse:
    # RFC 6749 clients read `error`; RFC 9457 readers get the problem members alongside it.
    body = problem_body(
        status=status,
        slug=f"oauth-{error.replace('_', '-')}",
        title="Token request refused",
        detail=description,
        instance=request.url.path,
        request_id=getattr(request.state, "request_id", None),
        extra={"error": error, "error_description": description},
    )
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


@router.post(
    "/oauth/token",
    summary="Obtain an access token (client credentials)",
    description=(
        "Form-encoded `grant_type=client_credentials` and optional `scope`, with the client "
        "authenticated by HTTP Basic (or `client_id`/`client_secret` in the form). Five failed "
        "attempts lock the client for ten minutes."
    ),
    responses={
        200: {"description": "A bearer access token"},
        400: {"description": "Bad request", "content": {"application/problem+json": {}}},
        401: {"description": "Client refused", "content": {"application/problem+json": {}}},
    },
)
async def token(request: Request, node: NodeDep) -> Any:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return _oauth_error(
            400,
            "invalid_request",
            "Send the form as application/x-www-form-urlencoded.",
            request,
            None,
        )
    try:
        pairs = parse_qsl((await request.body()).decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return _oauth_error(400, "invalid_request", "The form could not be read.", request, None)
    form = dict(pairs)
    if form.get("grant_type") == "authorization_code":
        from gateway.identity.issuer_login import exchange_authorization_code

        return await exchange_authorization_code(request, node, form)
    authorization = request.headers.get("authorization")
    claimed = claimed_client_id(form, authorization)
    if claimed is None:
        await audit_auth_failure(node, request, "no_client_id")
        return _oauth_error(
            401,
            "invalid_client",
            "Client authentication is required.",
            request,
            {"WWW-Authenticate": 'Basic realm="police-gateway"'},
        )
    async with node.db.sessions() as session:
        client = await get_client(session=session, client_id=claimed[:64])
        now = datetime.now(UTC)
        if client is not None and is_locked(client, now):
            await audit_auth_failure(node, request, "client_locked", actor=Actor(client_id=claimed))
            return _oauth_error(
                401,
                "invalid_client",
                "This client is locked after repeated failures; try again later.",
                request,
                None,
            )
        headers = {"Authorization": authorization} if authorization else {}
        status, body = await asyncio.to_thread(
            run_token_grant,
            uri=node.settings.node_url.rstrip("/") + "/oauth/token",
            form=form,
            headers=headers,
            client_row=client,
            claimed_id=claimed,
            signing_key=node.signing_key,
            issuer=node.settings.node_url,
        )
        if status == 200 and client is not None:
            record_success(client)
            await session.commit()
            log.info("oauth.token_issued", client_id=client.client_id)
            return JSONResponse(body, headers={"Cache-Control": "no-store"})
        locked = False
        if client is not None and body.get("error") == "invalid_client":
            locked = record_failure(client, now)
            await session.commit()
        await audit_auth_failure(
            node,
            request,
            "client_locked_now" if locked else str(body.get("error", "refused")),
            actor=Actor(client_id=claimed[:64]),
        )
    return _oauth_error(
        status if status >= 400 else 400,
        str(body.get("error", "invalid_request")),
        str(body.get("error_description") or "The token request was refused."),
        request,
        None,
    )
