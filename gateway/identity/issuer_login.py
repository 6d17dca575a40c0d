"""The built-in issuer's development sign-in: `GET/POST /oauth/authorize` and the
authorization-code grant with PKCE (S256) behind `POST /oauth/token`.

Demo users only: the page lets anyone pick a listed user without a password, so it is refused in
production (the router is only mounted when the built-in issuer is enabled, and every handler
checks the environment again). A force's real identity provider replaces all of this.

Authorization codes live in memory for sixty seconds and are redeemed once. That is enough for a
development issuer served by one process; a production identity provider keeps its own state.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import structlog
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from audit.entry import Actor
from gateway.console.templating import templates
from gateway.deps import NodeDep, audit_auth_failure
from gateway.errors import PROBLEM_MEDIA_TYPE, problem_body
from gateway.identity.issuer import mint_analyst_token
from gateway.node import Node
from gateway.settings import Settings

router = APIRouter(tags=["built-in issuer"], include_in_schema=True)
log = structlog.get_logger(__name__)

CONSOLE_CLIENT_ID = "gateway-console"
CODE_TTL_SECONDS = 60
TOKEN_TTL_SECONDS = 3600
_MAX_CODES = 10_000


@dataclass(frozen=True)
class DemoUser:
    """A person the development sign-in page offers; no password, so never in production."""

    user_id: str
    name: str
    roles: tuple[str, ...]
    vetting: str
    units: tuple[str, ...] = ()


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("auditor.dpo", "Dana Price (data protection officer)", ("auditor",), "SC", ("PSD",)),
    DemoUser(
        "analyst.msht", "Sam Okafor (intelligence analyst)", ("analyst",), "SC", ("MSHT", "CL")
    ),
    DemoUser("analyst.cl", "Priya Shah (county lines analyst)", ("analyst",), "NPPV3", ("CL",)),
)


def demo_user(user_id: str) -> DemoUser | None:
    return next((user for user in DEMO_USERS if user.user_id == user_id), None)


def authorization_clients(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Clients allowed to use the code flow here, with their exact redirect URIs: the node's
    own auditor console (a public client: it proves possession with PKCE, not a secret)."""
    base = settings.node_url.rstrip("/")
    return {CONSOLE_CLIENT_ID: (f"{base}/console/auth/callback",)}


@dataclass(frozen=True)
class _CodeGrant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scope: str
    user: DemoUser
    expires_at: float


class AuthorizationCodes:
    """One-time codes between the sign-in page and the token endpoint."""

    def __init__(self) -> None:
        self._codes: dict[str, _CodeGrant] = {}

    def issue(self, grant: _CodeGrant) -> str:
        now = time.monotonic()
        for code in [c for c, g in self._codes.items() if g.expires_at <= now]:
            del self._codes[code]
        if len(self._codes) >= _MAX_CODES:
            raise RuntimeError("too many outstanding authorization codes")
        code = secrets.token_urlsafe(32)
        self._codes[code] = grant
        return code

    def redeem(self, code: str) -> _CodeGrant | None:
        grant = self._codes.pop(code, None)
        if grant is None or grant.expires_at <= time.monotonic():
            return None
        return grant


def _codes_of(request: Request) -> AuthorizationCodes:
    codes: AuthorizationCodes | None = getattr(request.app.state, "authorization_codes", None)
    if codes is None:
        codes = AuthorizationCodes()
        request.app.state.authorization_codes = codes
    return codes


class _AuthorizeError(Exception):
    """A request the page must refuse without redirecting (unknown client or redirect URI)."""


@dataclass(frozen=True)
class _AuthorizeRequest:
    client_id: str
    redirect_uri: str
    state: str
    code_challenge: str
    nonce: str | None
    scope: str


def _check_authorize(settings: Settings, params: Mapping[str, str]) -> _AuthorizeRequest:
    # RFC 6749 4.1.2.1: with an unknown client or redirect URI the server must not redirect.
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    allowed = authorization_clients(settings).get(client_id)
    if allowed is None:
        raise _AuthorizeError("This client is not registered with the built-in issuer.")
    if redirect_uri not in allowed:
        raise _AuthorizeError("The redirect URI is not registered for this client.")
    if params.get("response_type") != "code":
        raise _AuthorizeError("Only response_type=code is supported.")
    # PKCE is mandatory here (RFC 9700 2.1.1), and only with S256: `plain` protects nothing.
    if params.get("code_challenge_method") != "S256":
        raise _AuthorizeError("PKCE with code_challenge_method=S256 is required.")
    challenge = params.get("code_challenge", "")
    if not 43 <= len(challenge) <= 128:
        raise _AuthorizeError("The code_challenge is missing or malformed.")
    state = params.get("state", "")
    if not state or len(state) > 256:
        raise _AuthorizeError("A state parameter is required.")
    nonce = params.get("nonce") or None
    if nonce is not None and len(nonce) > 256:
        raise _AuthorizeError("The nonce is too long.")
    return _AuthorizeRequest(
        client_id=client_id,
        redirect_uri=redirect_uri,
        state=state,
        code_challenge=challenge,
        nonce=nonce,
        scope=params.get("scope", "openid"),
    )


def _refuse_outside_development(settings: Settings) -> Response | None:
    if settings.environment == "production" or not settings.builtin_issuer_enabled:
        return HTMLResponse("The development sign-in page is switched off.", status_code=404)
    return None


@router.get(
    "/oauth/authorize",
    response_class=HTMLResponse,
    summary="Development sign-in page of the built-in issuer (authorization code + PKCE)",
)
async def authorize_page(request: Request, node: NodeDep) -> Response:
    refused = _refuse_outside_development(node.settings)
    if refused is not None:
        return refused
    try:
        checked = _check_authorize(node.settings, request.query_params)
    except _AuthorizeError as exc:
        return templates.TemplateResponse(
            request, "issuer_error.html", {"message": str(exc)}, status_code=400
        )
    return templates.TemplateResponse(
        request,
        "issuer_signin.html",
        {
            "users": DEMO_USERS,
            "params": {
                "client_id": checked.client_id,
                "redirect_uri": checked.redirect_uri,
                "state": checked.state,
                "code_challenge": checked.code_challenge,
                "code_challenge_method": "S256",
                "response_type": "code",
                "nonce": checked.nonce or "",
                "scope": checked.scope,
            },
            "force": node.settings.force_code,
        },
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


@router.post("/oauth/authorize", include_in_schema=False)
async def authorize_submit(request: Request, node: NodeDep) -> Response:
    refused = _refuse_outside_development(node.settings)
    if refused is not None:
        return refused
    async with request.form() as form:
        params = {key: value for key, value in form.items() if isinstance(value, str)}
    user_id = params.get("user_id", "")[:64]
    try:
        checked = _check_authorize(node.settings, params)
    except _AuthorizeError as exc:
        return templates.TemplateResponse(
            request, "issuer_error.html", {"message": str(exc)}, status_code=400
        )
    user = demo_user(user_id)
    if user is None:
        query = {"error": "access_denied", "state": checked.state, "iss": node.settings.node_url}
        return RedirectResponse(f"{checked.redirect_uri}?{urlencode(query)}", status_code=303)
    code = _codes_of(request).issue(
        _CodeGrant(
            client_id=checked.client_id,
            redirect_uri=checked.redirect_uri,
            code_challenge=checked.code_challenge,
            nonce=checked.nonce,
            scope=checked.scope,
            user=user,
            expires_at=time.monotonic() + CODE_TTL_SECONDS,
        )
    )
    log.info("issuer.code_issued", client_id=checked.client_id, user_id=user.user_id)
    # RFC 9207: name the issuer in the response so a client talking to several cannot be mixed up.
    query = {"code": code, "state": checked.state, "iss": node.settings.node_url}
    return RedirectResponse(f"{checked.redirect_uri}?{urlencode(query)}", status_code=303)


def _token_error(request: Request, status: int, error: str, description: str) -> JSONResponse:
    body = problem_body(
        status=status,
        slug=f"oauth-{error.replace('_', '-')}",
        title="Token request refused",
        detail=description,
        instance=request.url.path,
        request_id=getattr(request.state, "request_id", None),
        extra={"error": error, "error_description": description},
    )
    return JSONResponse(
        body,
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers={"Cache-Control": "no-store"},
    )


async def exchange_authorization_code(
    request: Request, node: Node, form: Mapping[str, str]
) -> JSONResponse:
    """The `authorization_code` grant (RFC 6749 4.1.3) with PKCE S256 (RFC 7636 4.6).

    `/oauth/token` hands form-encoded requests with that grant type here. Returns the token
    response: an access token for this node and an OpenID Connect ID token for the client.
    """
    if _refuse_outside_development(node.settings) is not None:
        return _token_error(request, 400, "unsupported_grant_type", "Not offered here.")
    code = form.get("code", "")
    verifier = form.get("code_verifier", "")
    client_id = form.get("client_id", "")
    grant = _codes_of(request).redeem(code) if code else None
    if grant is None:
        await audit_auth_failure(node, request, "authorization_code_invalid")
        return _token_error(request, 400, "invalid_grant", "The code is unknown, used or expired.")
    actor = Actor(user_id=grant.user.user_id, force=node.settings.force_code)
    if client_id != grant.client_id or form.get("redirect_uri") != grant.redirect_uri:
        await audit_auth_failure(node, request, "authorization_code_mismatch", actor=actor)
        return _token_error(
            request, 400, "invalid_grant", "The client or redirect URI does not match the code."
        )
    # RFC 7636 4.1: a verifier is 43-128 characters; compare the derived challenge in constant
    # time since it guards a credential.
    expected = create_s256_code_challenge(verifier) if 43 <= len(verifier) <= 128 else ""
    if not expected or not hmac.compare_digest(expected, grant.code_challenge):
        await audit_auth_failure(node, request, "pkce_failed", actor=actor)
        return _token_error(request, 400, "invalid_grant", "The code verifier does not match.")
    user = grant.user
    extra: dict[str, Any] = {"name": user.name}
    access_token = mint_analyst_token(
        node,
        user_id=user.user_id,
        roles=list(user.roles),
        vetting=user.vetting,
        units=list(user.units),
        ttl_seconds=TOKEN_TTL_SECONDS,
        extra_claims=extra,
    )
    id_extra = dict(extra)
    if grant.nonce is not None:
        id_extra["nonce"] = grant.nonce
    id_token = mint_analyst_token(
        node,
        user_id=user.user_id,
        roles=list(user.roles),
        vetting=user.vetting,
        units=list(user.units),
        ttl_seconds=TOKEN_TTL_SECONDS,
        audience=grant.client_id,
        extra_claims=id_extra,
    )
    log.info("issuer.code_redeemed", client_id=grant.client_id, user_id=user.user_id)
    return JSONResponse(
        {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL_SECONDS,
            "id_token": id_token,
            "scope": grant.scope,
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
