"""Analyst identity: bearer JWTs from issuers the federation manifest trusts for this node's force.

A node accepts analysts of its own force only (partners reach it through signed node-to-node
requests, never with an analyst's token). The token's issuer must be listed in the manifest for
this force, or be the node's own built-in issuer while that is switched on; the force must be an
active member. Keys come from the issuer's JWKS (fetched with httpx, cached, refreshed on an
unknown kid at most once per `min_refresh_seconds`), from an inline JWKS in the manifest, or, when
the manifest gives neither, from the jwks_uri in the issuer's OpenID configuration.

Every refusal is a 401 problem+json with a Bearer challenge and an audited authentication failure
whose reason is one of the short codes in `AnalystTokenError.reason`.

An analyst sends the same token with every search, so a token whose signature has verified is
remembered for `VERIFIED_TTL_SECONDS` (`VerifiedTokens`): only the key lookup and the signature
check are skipped. The issuer's trust in the manifest, the force's membership and every claim
(expiry included) are checked again on each request, so a suspension or an expiry takes effect at
once; a key withdrawn from the issuer's JWKS stops verifying after at most that long (the JWKS
cache itself keeps keys for up to `JwksCache.max_age_seconds`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cachetools
import httpx
import structlog
from fastapi import Request
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from gateway.deps import NodeDep, audit_auth_failure
from gateway.errors import Unauthenticated
from gateway.federation.manifest import Manifest, ManifestHolder, TrustedIssuer
from gateway.identity.issuer import IssuerError, load_issuer_key
from gateway.identity.principals import AnalystPrincipal
from gateway.node import Node
from gateway.settings import Settings
from schemas.enums import VettingLevel

log = structlog.get_logger(__name__)

# Asymmetric algorithms only: "none" and HMAC never verify, whatever the header says, so a public
# key can never be used as an HMAC secret. Ed25519 is RFC 9864's name for what was "EdDSA".
ALLOWED_ALGORITHMS = frozenset({"RS256", "PS256", "ES256", "Ed25519", "EdDSA"})
_KEY_TYPE_FOR_ALG: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "Ed25519": ("OKP", "Ed25519"),
    "EdDSA": ("OKP", "Ed25519"),
}
_EDDSA_NAMES = frozenset({"Ed25519", "EdDSA"})
MAX_JWKS_BYTES = 256 * 1024
MIN_RSA_BITS = 2048
VERIFIED_TTL_SECONDS = 60.0
VERIFIED_MAX_TOKENS = 10_000

_CHALLENGE = 'Bearer realm="police-gateway", error="invalid_token"'


class AnalystTokenError(Exception):
    """A refused analyst token. `reason` is a short code for the audit log (never token content);
    the message is safe to show the caller."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class JwksUnavailable(Exception):
    pass


Key = RSAKey | ECKey | OKPKey


@dataclass
class _KeySetEntry:
    keys: dict[str | None, Key]
    fetched_at: float


def _import_public_keys(jwks: dict[str, Any]) -> dict[str | None, Key]:
    raw_keys = jwks.get("keys")
    if not isinstance(raw_keys, list):
        raise JwksUnavailable("the JWK Set has no keys array")
    keys: dict[str | None, Key] = {}
    for raw in raw_keys:
        if not isinstance(raw, dict) or raw.get("kty") not in {"RSA", "EC", "OKP"}:
            continue  # symmetric or unknown key types can never verify an analyst token
        if raw.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in raw.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}
        try:
            key = JWKRegistry.import_key(public)
        except (JoseError, ValueError, TypeError):
            log.warning("identity.jwks_key_skipped", kid=str(raw.get("kid"))[:80])
            continue
        if isinstance(key, RSAKey | ECKey | OKPKey):
            keys[raw.get("kid")] = key
    return keys


@dataclass
class JwksCache:
    """Issuer public keys by JWKS URL: cached for `max_age_seconds`, refetched early when a token
    names an unknown kid, but never more often than `min_refresh_seconds` per URL (an attacker
    sending random kids must not turn the node into a JWKS flooder)."""

    max_age_seconds: float = 600.0
    min_refresh_seconds: float = 30.0
    timeout_seconds: float = 3.0
    transport: httpx.AsyncBaseTransport | None = None
    clock: Callable[[], float] = time.monotonic
    fetches: int = 0
    _entries: dict[str, _KeySetEntry] = field(default_factory=dict)
    _discovered: dict[str, str] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def _get_json(self, url: str) -> dict[str, Any]:
        self.fetches += 1
        async with httpx.AsyncClient(
            timeout=self.timeout_seconds, transport=self.transport, follow_redirects=False
        ) as client:
            try:
                response = await client.get(url, headers={"Accept": "application/json"})
            except httpx.HTTPError as exc:
                raise JwksUnavailable(f"{type(exc).__name__} fetching {url}") from exc
        if response.status_code != 200:
            raise JwksUnavailable(f"HTTP {response.status_code} from {url}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise JwksUnavailable(f"{url} answered more than {MAX_JWKS_BYTES} bytes")
        try:
            body = response.json()
        except ValueError as exc:
            raise JwksUnavailable(f"{url} did not answer JSON") from exc
        if not isinstance(body, dict):
            raise JwksUnavailable(f"{url} did not answer a JSON object")
        return body

    async def _jwks_uri(self, trusted: TrustedIssuer) -> str:
        if trusted.jwks_uri is not None:
            return trusted.jwks_uri
        known = self._discovered.get(trusted.issuer)
        if known is not None:
            return known
        config_url = trusted.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._get_json(config_url)
        # OpenID Connect Discovery 1.0 section 4.3: the document must name the same issuer.
        if document.get("issuer") != trusted.issuer:
            raise JwksUnavailable("the OpenID configuration names a different issuer")
        uri = document.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
            raise JwksUnavailable("the OpenID configuration has no usable jwks_uri")
        self._discovered[trusted.issuer] = uri
        return uri

    async def key_for(self, trusted: TrustedIssuer, kid: str | None) -> Key | None:
        """The issuer's verification key with this kid (or its only key when the token names
        none), or None if the issuer has no such key even after an allowed refresh."""
        if trusted.jwks is not None:
            return _pick(_import_public_keys(trusted.jwks), kid)
        uri = await self._jwks_uri(trusted)
        lock = self._locks.setdefault(uri, asyncio.Lock())
        async with lock:
            entry = self._entries.get(uri)
            now = self.clock()
            stale = entry is None or now - entry.fetched_at >= self.max_age_seconds
            unknown_kid = entry is not None and _pick(entry.keys, kid) is None
            may_refresh = entry is None or now - entry.fetched_at >= self.min_refresh_seconds
            if stale or (unknown_kid and may_refresh):
                try:
                    keys = _import_public_keys(await self._get_json(uri))
                    entry = _KeySetEntry(keys=keys, fetched_at=now)
                    self._entries[uri] = entry
                except JwksUnavailable as exc:
                    if entry is None:
                        raise
                    # Keep verifying with the keys we had rather than lock every analyst out.
                    log.warning("identity.jwks_refresh_failed", reason=str(exc))
            assert entry is not None
            return _pick(entry.keys, kid)


def _pick(keys: dict[str | None, Key], kid: str | None) -> Key | None:
    if kid is None:
        return next(iter(keys.values())) if len(keys) == 1 else None
    return keys.get(kid)


def _key_fits(key: Key, alg: str, raw_alg: object) -> bool:
    kty, crv = _KEY_TYPE_FOR_ALG[alg]
    if key.key_type != kty:
        return False
    if crv is not None and key.as_dict(private=False).get("crv") != crv:
        return False
    if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
        return False
    # A key published for one algorithm must not verify another (RS256 key used for PS256 is OK
    # only if the JWK leaves "alg" out).
    if isinstance(raw_alg, str):
        return raw_alg == alg or (raw_alg in _EDDSA_NAMES and alg in _EDDSA_NAMES)
    return True


def _string_tuple(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list) or not all(
        isinstance(i, str) and 0 < len(i) <= 64 for i in items
    ):
        raise AnalystTokenError("claims_invalid", f"the {what} claim must be a list of strings")
    if len(items) > 32:
        raise AnalystTokenError("claims_invalid", f"the {what} claim has too many values")
    return tuple(items)


@dataclass(frozen=True)
class _Trust:
    entry: TrustedIssuer
    local_key: Key | None  # the node's own built-in issuer: no JWKS fetch
    local_kid: str | None = None


def _trust_for(
    *, issuer: str, manifest: Manifest, settings: Settings
) -> tuple[_Trust, str] | AnalystTokenError:
    force = settings.force_code
    member = manifest.member(force)
    listed = member.trusted_issuer(issuer) if member is not None else None
    builtin = settings.builtin_issuer_enabled and issuer == settings.node_url
    if listed is None and not builtin:
        elsewhere = [m.force_code for m in manifest.members if m.trusted_issuer(issuer)]
        if elsewhere:
            # A token from an issuer trusted for force A cannot act as this node's force.
            return AnalystTokenError(
                "issuer_other_force", "The issuer is not trusted for this force."
            )
        return AnalystTokenError("issuer_untrusted", "The token's issuer is not trusted.")
    if member is None:
        return AnalystTokenError(
            "force_not_member", "This force is not a member of the federation."
        )
    if member.status != "active":
        return AnalystTokenError("force_suspended", "This force's membership is suspended.")
    if builtin:
        try:
            key = load_issuer_key(settings)
        except IssuerError:
            return AnalystTokenError("issuer_unavailable", "The built-in issuer has no key.")
        entry = listed or TrustedIssuer(
            issuer=issuer, audience=settings.node_url, jwks={"keys": [key.public_jwk()]}
        )
        return _Trust(entry=entry, local_key=key.jwk, local_kid=key.kid), force
    assert listed is not None
    return _Trust(entry=listed, local_key=None), force


class VerifiedTokens:
    """Claims of tokens whose signature verified, by the token's SHA-256 and the issuer whose key
    verified it, each for `ttl_seconds` (bounded, thread-safe)."""

    def __init__(
        self,
        *,
        ttl_seconds: float = VERIFIED_TTL_SECONDS,
        max_tokens: int = VERIFIED_MAX_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._entries: cachetools.TTLCache[tuple[bytes, str], dict[str, Any]] = cachetools.TTLCache(
            maxsize=max_tokens, ttl=ttl_seconds, timer=clock
        )

    @staticmethod
    def key(token: str, issuer: str) -> tuple[bytes, str]:
        return hashlib.sha256(token.encode("ascii")).digest(), issuer

    def get(self, key: tuple[bytes, str]) -> dict[str, Any] | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: tuple[bytes, str], claims: dict[str, Any]) -> None:
        with self._lock:
            self._entries[key] = claims

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class AnalystVerifier:
    """Checks analyst tokens for one node; holds the JWKS cache shared by its requests."""

    def __init__(
        self,
        settings: Settings,
        *,
        jwks: JwksCache | None = None,
        verified: VerifiedTokens | None = None,
    ) -> None:
        self.settings = settings
        self.jwks = jwks or JwksCache()
        # The same clock as the JWKS cache, so keys and remembered tokens age together.
        self.verified = verified if verified is not None else VerifiedTokens(clock=self.jwks.clock)
        self.signatures_checked = 0  # for tests: how many tokens went through steps 3 and 4

    async def verify(
        self, token: str, manifest: Manifest, *, now: int | None = None
    ) -> AnalystPrincipal:
        """Validate `token` against the issuers trusted for this node's force; raise
        AnalystTokenError with an audit reason otherwise."""
        # 1. Read the header without trusting it; refuse any algorithm outside the allow-list
        #    before touching keys (alg "none", HS256 with the public key as secret...).
        try:
            unverified = jws.extract_compact(token.encode("ascii"))
        except (JoseError, ValueError, UnicodeError) as exc:
            raise AnalystTokenError("token_malformed", "The token is not a compact JWS.") from exc
        alg = unverified.protected.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise AnalystTokenError("alg_refused", "The token's algorithm is not accepted.")
        kid = unverified.protected.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AnalystTokenError("token_malformed", "The token's kid is not a string.")
        # 2. The issuer (unverified yet) selects which keys may verify it.
        try:
            unverified_claims = json.loads(unverified.payload)
        except ValueError as exc:
            raise AnalystTokenError("token_malformed", "The token's claims are not JSON.") from exc
        issuer = unverified_claims.get("iss") if isinstance(unverified_claims, dict) else None
        if not isinstance(issuer, str):
            raise AnalystTokenError("issuer_untrusted", "The token names no issuer.")
        found = _trust_for(issuer=issuer, manifest=manifest, settings=self.settings)
        if isinstance(found, AnalystTokenError):
            raise found
        trust, force = found
        remembered = self.verified.key(token, trust.entry.issuer)
        verified_claims = self.verified.get(remembered)
        if verified_claims is None:
            verified_claims = await self._verified_signature(token, trust, alg, kid)
            self.verified.put(remembered, verified_claims)
        # 5. Registered claims, with the configured clock-skew leeway.
        registry = JWTClaimsRegistry(
            now=now,
            leeway=self.settings.jwt_leeway_seconds,
            iss={"essential": True, "value": trust.entry.issuer},
            aud={"essential": True, "value": trust.entry.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        claims = verified_claims
        try:
            registry.validate(claims)
        except JoseError as exc:
            reason = {
                "exp": "token_expired",
                "nbf": "token_not_yet_valid",
                "iat": "token_not_yet_valid",
                "aud": "wrong_audience",
                "iss": "issuer_untrusted",
            }.get(str(getattr(exc, "claim", "")), "claims_invalid")
            raise AnalystTokenError(reason, f"The token is not valid ({exc.error}).") from exc
        # 6. Our claims: the force it claims (if any) must be the one its issuer is trusted for.
        claimed_force = claims.get("force")
        if claimed_force is not None and claimed_force != force:
            raise AnalystTokenError("force_mismatch", "The token is for a different force.")
        subject = claims["sub"]
        if not subject or len(subject) > 200:
            raise AnalystTokenError("claims_invalid", "The token's subject is not usable.")
        try:
            vetting = VettingLevel(str(claims.get("vetting")))
        except ValueError:
            raise AnalystTokenError(
                "vetting_invalid", "The token carries no known vetting level."
            ) from None
        return AnalystPrincipal(
            user_id=subject,
            force=force,
            roles=_string_tuple(claims.get("roles"), "roles"),
            vetting=vetting.value,
            units=_string_tuple(claims.get("units"), "units"),
            issuer=trust.entry.issuer,
        )

    async def _verified_signature(
        self, token: str, trust: _Trust, alg: str, kid: str | None
    ) -> dict[str, Any]:
        """Steps 3 and 4: the claims of a token whose signature verifies under the issuer's key."""
        self.signatures_checked += 1
        # 3. The key: the issuer's JWKS entry with the token's kid (refreshed once if unknown).
        if trust.local_key is not None:
            key: Key | None = trust.local_key if kid in (None, trust.local_kid) else None
        else:
            try:
                key = await self.jwks.key_for(trust.entry, kid)
            except JwksUnavailable as exc:
                log.warning("identity.jwks_unavailable", reason=str(exc))
                raise AnalystTokenError(
                    "jwks_unavailable", "The issuer's keys could not be fetched."
                ) from exc
        if key is None:
            raise AnalystTokenError(
                "unknown_kid", "The token's key is not one the issuer publishes."
            )
        if not _key_fits(key, alg, key.as_dict(private=False).get("alg")):
            raise AnalystTokenError("alg_refused", "The token's algorithm does not fit its key.")
        # 4. Signature.
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except (JoseError, ValueError) as exc:
            raise AnalystTokenError("bad_signature", "The token's signature is not valid.") from exc
        return dict(decoded.claims)


def analyst_verifier(request: Request, node: Node) -> AnalystVerifier:
    """The verifier (and so the JWKS cache) kept for this node on the application state."""
    current: AnalystVerifier | None = getattr(request.app.state, "analyst_verifier", None)
    if current is None or current.settings is not node.settings:
        current = AnalystVerifier(node.settings)
        request.app.state.analyst_verifier = current
    return current


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def require_analyst(request: Request, node: NodeDep) -> AnalystPrincipal:
    """FastAPI dependency: the authenticated analyst of this node's force, or 401 (audited)."""
    token = _bearer(request)
    if token is None:
        await audit_auth_failure(node, request, "analyst_token_missing")
        raise Unauthenticated(
            "A bearer token from your force's identity provider is required.",
            headers={"WWW-Authenticate": 'Bearer realm="police-gateway"'},
        )
    holder: ManifestHolder | None = node.manifest
    if holder is None:
        await audit_auth_failure(node, request, "no_manifest")
        raise Unauthenticated(
            "This node has no federation manifest, so it accepts no analysts.",
            headers={"WWW-Authenticate": _CHALLENGE},
        )
    holder.maybe_reload()
    try:
        principal = await analyst_verifier(request, node).verify(token, holder.current)
    except AnalystTokenError as exc:
        await audit_auth_failure(node, request, exc.reason)
        log.info("identity.analyst_refused", reason=exc.reason)
        raise Unauthenticated(str(exc), headers={"WWW-Authenticate": _CHALLENGE}) from exc
    log.debug("identity.analyst_authenticated", force=principal.force)
    return principal


__all__ = [
    "ALLOWED_ALGORITHMS",
    "AnalystTokenError",
    "AnalystVerifier",
    "JwksCache",
    "JwksUnavailable",
    "require_analyst",
]
