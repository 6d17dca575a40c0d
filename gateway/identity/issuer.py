"""The node's built-in token issuer for analysts: the embedded default when a force has no OIDC
identity provider of its own (demos, tests, small deployments).

It owns its own Ed25519 key (data_dir/issuer.pem, mode 0600), separate from the node signing key,
so an analyst token can never pass as a force-system token or a federation message. Tokens name
the node URL as issuer; a node trusts its own built-in issuer for its own force while
`settings.builtin_issuer_enabled`, and never when it is switched off (production default).
"""

from __future__ import annotations

import os
import secrets
import stat
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jwt

from gateway.identity.signing import NodeSigningKey
from gateway.settings import Settings
from schemas.enums import VettingLevel

if TYPE_CHECKING:
    from gateway.node import Node

ISSUER_ALGORITHM = "Ed25519"
RESERVED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "force", "roles", "vetting", "units"}
)
MAX_TTL_SECONDS = 12 * 3600


class IssuerError(Exception):
    """The built-in issuer cannot do what was asked; the message says why."""


class IssuerDisabled(IssuerError):
    """The built-in issuer is switched off for this node (settings.builtin_issuer_enabled)."""


def issuer_key_path(settings: Settings) -> Path:
    return settings.data_dir / "issuer.pem"


def ensure_issuer_key(settings: Settings) -> bool:
    """Create the issuer key (mode 0600) if the built-in issuer is on and it has no key yet.
    Returns True if it created one. Called by `gateway init`."""
    path = issuer_key_path(settings)
    if not settings.builtin_issuer_enabled or path.exists():
        return False
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False  # another process (replica, parallel init) won the race; use its key
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return True


_loaded: dict[Path, tuple[tuple[int, int], NodeSigningKey]] = {}
_loaded_lock = threading.Lock()


def load_issuer_key(settings: Settings) -> NodeSigningKey:
    """The issuer key, read once per file version (the node reads it on every token it checks)."""
    if not settings.builtin_issuer_enabled:
        raise IssuerDisabled("the built-in issuer is switched off for this node")
    path = issuer_key_path(settings)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise IssuerError("the built-in issuer has no key yet; run `gateway init`") from None
    stamp = (info.st_mtime_ns, info.st_ino)
    with _loaded_lock:
        cached = _loaded.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise IssuerError(f"issuer key {path.name} is readable by others; chmod 600 it")
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise IssuerError("the issuer key is not an Ed25519 key")
    key = NodeSigningKey.from_private_key(private)
    with _loaded_lock:
        _loaded[path] = (stamp, key)
    return key


def issuer_jwks(settings: Settings) -> dict[str, Any]:
    """The public JWK Set served at /oauth/jwks."""
    return {"keys": [load_issuer_key(settings).public_jwk()]}


def _settings_of(node_or_settings: Node | Settings) -> Settings:
    if isinstance(node_or_settings, Settings):
        return node_or_settings
    return node_or_settings.settings


def _string_list(values: Iterable[str], what: str) -> list[str]:
    items = [value.strip() for value in values if value.strip()]
    if any(len(item) > 64 for item in items) or len(items) > 32:
        raise IssuerError(f"{what}: at most 32 values of at most 64 characters")
    return items


def mint_analyst_token(
    node: Node | Settings,
    *,
    user_id: str,
    roles: Iterable[str],
    vetting: str,
    units: Iterable[str] = (),
    ttl_seconds: int = 3600,
    audience: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
    now: int | None = None,
) -> str:
    """A signed analyst access token from this node's built-in issuer.

    `node` may be a running Node or just its Settings (the `gateway token` command has no node).
    `extra_claims` may add e.g. `name` (display name) but never override the registered claims.
    """
    settings = _settings_of(node)
    key = load_issuer_key(settings)
    if not user_id.strip() or len(user_id) > 200:
        raise IssuerError("user id must be 1 to 200 characters")
    try:
        level = VettingLevel(vetting)
    except ValueError:
        known = ", ".join(v.value for v in VettingLevel)
        raise IssuerError(f"unknown vetting level {vetting!r}; known: {known}") from None
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise IssuerError(f"ttl must be between 1 and {MAX_TTL_SECONDS} seconds")
    extra = dict(extra_claims or {})
    clashing = sorted(RESERVED_CLAIMS & extra.keys())
    if clashing:
        raise IssuerError(f"extra claims may not override {', '.join(clashing)}")
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        **extra,
        "iss": settings.node_url,
        "sub": user_id,
        "aud": audience or settings.node_url,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": secrets.token_urlsafe(16),
        "force": settings.force_code,
        "roles": _string_list(roles, "roles"),
        "vetting": level.value,
        "units": _string_list(units, "units"),
    }
    header = {"alg": ISSUER_ALGORITHM, "kid": key.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key.jwk, algorithms=[ISSUER_ALGORITHM])


def discovery_document(settings: Settings) -> dict[str, Any]:
    """OpenID Provider metadata (OpenID Connect Discovery 1.0, RFC 8414) of the built-in issuer."""
    base = settings.node_url.rstrip("/")
    return {
        "issuer": settings.node_url,
        "jwks_uri": f"{base}/oauth/jwks",
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ISSUER_ALGORITHM],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "profile"],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "name",
            "force",
            "roles",
            "vetting",
            "units",
        ],
    }
