"""The OAuth 2.0 client-credentials token endpoint, built on Authlib's authorization server.

Authlib ships server integrations for Flask and Django only, so this module adapts its framework-
neutral `AuthorizationServer` to FastAPI: the client row is loaded asynchronously first, then
Authlib validates the grant, authenticates the client and shapes the token response (in a worker
thread, since argon2 verification is deliberately slow).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator

from gateway.identity.clients import check_secret
from gateway.identity.signing import NodeSigningKey
from gateway.identity.tables import ClientRow
from gateway.identity.tokens import issue_token

TOKEN_TTL_SECONDS = 900


class _FormRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(self, uri: str, form: dict[str, str], headers: dict[str, str]) -> None:
        super().__init__("POST", uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


@dataclass
class _Client(ClientMixin):  # type: ignore[misc]
    row: ClientRow | None
    claimed_id: str

    def get_client_id(self) -> str:
        return self.claimed_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        own = set(self.row.scopes.split()) if self.row else set()
        if not scope:
            return " ".join(sorted(own))
        return " ".join(sorted(own & set(scope.split())))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return check_secret(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in {"client_secret_basic", "client_secret_post"}

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials" and self.row is not None and not self.row.disabled


class _NodeAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, client: _Client) -> None:
        super().__init__()
        self._client = client

    def query_client(self, client_id: str) -> _Client | None:
        return self._client if client_id == self._client.claimed_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        # Tokens are self-contained signed JWTs; nothing to store.
        return None

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


def claimed_client_id(form: dict[str, str], authorization: str | None) -> str | None:
    """The client id the caller claims, from HTTP Basic or the form (before authentication)."""
    if authorization and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, _, _ = decoded.partition(":")
        return unquote(client_id) or None
    return form.get("client_id") or None


def run_token_grant(
    *,
    uri: str,
    form: dict[str, str],
    headers: dict[str, str],
    client_row: ClientRow | None,
    claimed_id: str,
    signing_key: NodeSigningKey,
    issuer: str,
) -> tuple[int, dict[str, Any]]:
    """Validate a client-credentials request and mint a token. Blocking: run in a thread."""
    client = _Client(row=client_row, claimed_id=claimed_id)
    server = _NodeAuthorizationServer(client)

    def access_token(client: _Client, grant_type: str, user: Any, scope: str) -> str:
        return issue_token(
            signing_key,
            issuer=issuer,
            audience=issuer,
            subject=client.claimed_id,
            scopes=scope.split() if scope else [],
            ttl_seconds=TOKEN_TTL_SECONDS,
        )

    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            access_token_generator=access_token,
            expires_generator=lambda client, grant_type: TOKEN_TTL_SECONDS,
        ),
    )
    server.register_grant(ClientCredentialsGrant)
    request = _FormRequest(uri, form, headers)
    try:
        status, body, _headers = server.create_token_response(request)
    except InsecureTransportError:
        # Authlib raises (rather than answers) when the node's URL is plain http off loopback;
        # without this the client got a 500 for what is the deployment's missing TLS.
        return 400, {
            "error": "invalid_request",
            "error_description": "This node's token endpoint is only served over HTTPS.",
        }
    return int(status), dict(body)
