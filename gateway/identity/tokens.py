"""Access tokens this node issues to its force systems: short-lived JWTs signed with Ed25519.

Only the algorithms in `ALLOWED_ALGORITHMS` are accepted; `alg: none` and HMAC algorithms never
verify, whatever the token claims.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from gateway.identity.signing import NodeSigningKey

ALLOWED_ALGORITHMS = ["Ed25519"]
LEEWAY_SECONDS = 30


class InvalidToken(Exception):
    """The token is not one this node accepts. The message is safe to show (no token content)."""


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    scopes: frozenset[str]
    token_use: str
    issued_at: int
    expires_at: int
    jti: str


def issue_token(
    key: NodeSigningKey,
    *,
    issuer: str,
    audience: str,
    subject: str,
    scopes: list[str],
    ttl_seconds: int,
    token_use: str = "system",  # noqa: S107 - a claim value, not a secret
    now: int | None = None,
) -> str:
    issued = int(time.time()) if now is None else now
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "scope": " ".join(sorted(scopes)),
        "token_use": token_use,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": secrets.token_urlsafe(16),
    }
    header = {"alg": "Ed25519", "kid": key.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key.jwk, algorithms=ALLOWED_ALGORITHMS)


def verify_token(
    token: str,
    keys: list[NodeSigningKey],
    *,
    issuer: str,
    audience: str,
    token_use: str = "system",  # noqa: S107 - a claim value, not a secret
    now: int | None = None,
) -> TokenClaims:
    keyset = KeySet([k.jwk for k in keys])
    try:
        decoded = jwt.decode(token, keyset, algorithms=ALLOWED_ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise InvalidToken("token signature or format is not valid") from exc
    if decoded.header.get("alg") not in ALLOWED_ALGORITHMS:
        raise InvalidToken("token algorithm is not allowed")
    registry = JWTClaimsRegistry(
        now=now,
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        sub={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(decoded.claims)
    except JoseError as exc:
        raise InvalidToken(f"token claims are not valid ({exc.error})") from exc
    claims = decoded.claims
    if claims.get("token_use") != token_use:
        raise InvalidToken("token is not meant for this use")
    scope = claims.get("scope", "")
    return TokenClaims(
        subject=str(claims["sub"]),
        scopes=frozenset(str(scope).split()),
        token_use=str(claims["token_use"]),
        issued_at=int(claims.get("iat", 0)),
        expires_at=int(claims["exp"]),
        jti=str(claims["jti"]),
    )
