"""The signed node-to-node protocol: every request and every response carries a JWS.

A request's `Federation-Signature` header is a compact JWT signed by the calling node's key with
the answering node as audience, a short expiry (at most `MAX_TTL_SECONDS`), a unique id (`jti`,
checked against a replay cache), the method and path, and the SHA-256 of the body. The body holds
the analyst's principal, purpose and query, so the signature covers them through the hash.

A response carries the same header, signed by the answering node, binding the SHA-256 of the
request's token (X-Road's "request hash") and of the response body. A caller discards a response
whose signature or request hash does not verify.

Verification is written as numbered steps so each refusal has one reason code (`ProtocolError
.reason`), which the answering node audits and the caller turns into a partner status.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.identity.signing import NodeSigningKey

SIGNATURE_HEADER: Final = "Federation-Signature"
REQUEST_TYPE: Final = "fed-req+jwt"
RESPONSE_TYPE: Final = "fed-resp+jwt"
MAX_TTL_SECONDS: Final = 60
DEFAULT_TTL_SECONDS: Final = 30
CLOCK_SKEW_SECONDS: Final = 5
# RFC 9864 name first; "EdDSA" is the older name for the same signatures.
ALGORITHMS: Final = ["Ed25519", "EdDSA"]


class ProtocolError(Exception):
    """A message that must not be acted on. `reason` is a short code safe to log and audit."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# Reason codes (also the strings written into audit entries).
UNKNOWN_MEMBER: Final = "unknown_member"
SUSPENDED_MEMBER: Final = "suspended_member"
BAD_SIGNATURE: Final = "bad_signature"
MALFORMED: Final = "malformed"
WRONG_AUDIENCE: Final = "wrong_audience"
EXPIRED: Final = "expired"
REPLAY: Final = "replay"
BODY_HASH_MISMATCH: Final = "body_hash_mismatch"
REQUEST_HASH_MISMATCH: Final = "request_hash_mismatch"
WRONG_TARGET: Final = "wrong_target"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def body_hash(body: bytes) -> str:
    return _b64(hashlib.sha256(body).digest())


def request_hash(token: str) -> str:
    """The hash a response binds: SHA-256 of the request's compact JWS (which binds the body)."""
    return _b64(hashlib.sha256(token.encode("ascii")).digest())


@dataclass(frozen=True)
class RequestClaims:
    sender: str
    audience: str
    jti: str
    issued_at: int
    expires_at: int
    method: str
    path: str
    token: str

    @property
    def request_hash(self) -> str:
        return request_hash(self.token)


@dataclass(frozen=True)
class ResponseClaims:
    sender: str
    audience: str
    issued_at: int
    status: int


class ReplayCache:
    """Request ids seen until their expiry, per process.

    Hand-written because it is a dict with expiry; a message is admitted once. Replicas behind a
    load balancer each keep their own cache, so the short expiry bounds what a replay could reach.
    """

    def __init__(self, *, max_entries: int = 200_000) -> None:
        self._seen: dict[tuple[str, str], int] = {}
        self._max = max_entries

    def admit(self, sender: str, jti: str, expires_at: int, now: int) -> bool:
        key = (sender, jti)
        if key in self._seen and self._seen[key] >= now:
            return False
        if len(self._seen) >= self._max:
            self.prune(now)
            if len(self._seen) >= self._max:
                # Refuse rather than forget: forgetting would make old messages replayable.
                return False
        self._seen[key] = expires_at + CLOCK_SKEW_SECONDS
        return True

    def prune(self, now: int) -> None:
        self._seen = {k: exp for k, exp in self._seen.items() if exp >= now}

    def __len__(self) -> int:
        return len(self._seen)


def sign_request(
    key: NodeSigningKey,
    *,
    sender: str,
    audience: str,
    method: str,
    path: str,
    body: bytes,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    now: int | None = None,
) -> str:
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"a federation request lives at most {MAX_TTL_SECONDS} s")
    issued = int(time.time()) if now is None else now
    claims = {
        "iss": sender,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": secrets.token_urlsafe(18),
        "htm": method.upper(),
        "htu": path,
        "bh": body_hash(body),
    }
    header = {"alg": "Ed25519", "kid": key.kid, "typ": REQUEST_TYPE}
    return jwt.encode(header, claims, key.jwk, algorithms=ALGORITHMS)


def sign_response(
    key: NodeSigningKey,
    *,
    sender: str,
    audience: str,
    request_token_hash: str,
    status: int,
    body: bytes,
    now: int | None = None,
) -> str:
    issued = int(time.time()) if now is None else now
    claims = {
        "iss": sender,
        "aud": audience,
        "iat": issued,
        "exp": issued + MAX_TTL_SECONDS,
        "rqh": request_token_hash,
        "st": status,
        "bh": body_hash(body),
    }
    header = {"alg": "Ed25519", "kid": key.kid, "typ": RESPONSE_TYPE}
    return jwt.encode(header, claims, key.jwk, algorithms=ALGORITHMS)


def unverified_sender(token: str) -> str:
    """The `iss` of a token before verification, only to choose which member's keys to try."""
    try:
        _, payload, _ = token.split(".")
        padded = payload + "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(MALFORMED, "the federation signature is not a compact JWS") from exc
    sender = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(sender, str) or not sender:
        raise ProtocolError(MALFORMED, "the federation signature names no sender")
    return sender


@functools.lru_cache(maxsize=256)
def _imported_keys(keys_json: str) -> KeySet:
    # A member's published keys change only with the manifest: imported once per key set, not
    # once per message (every partner request and every answer is verified).
    return KeySet.import_key_set({"keys": json.loads(keys_json)})


def _decode(token: str, keys: Sequence[Mapping[str, Any]], typ: str) -> dict[str, Any]:
    try:
        keyset = _imported_keys(json.dumps([dict(k) for k in keys], sort_keys=True))
        decoded = jwt.decode(token, keyset, algorithms=ALGORITHMS)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ProtocolError(BAD_SIGNATURE, "the federation signature does not verify") from exc
    if decoded.header.get("typ") != typ:
        raise ProtocolError(MALFORMED, f"the federation message is not a {typ}")
    return dict(decoded.claims)


def _require_int(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(MALFORMED, f"the federation message lacks `{name}`")
    return value


def _require_str(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError(MALFORMED, f"the federation message lacks `{name}`")
    return value


def verify_request(
    token: str,
    body: bytes,
    *,
    audience: str,
    method: str,
    path: str,
    keys_of: Callable[[str], Sequence[Mapping[str, Any]]],
    replay_cache: ReplayCache,
    now: int | None = None,
) -> RequestClaims:
    """Check a partner's request; raise ProtocolError with the first failed check's reason.

    `keys_of(sender)` returns the sender's public JWKs from the manifest, or raises ProtocolError
    (UNKNOWN_MEMBER / SUSPENDED_MEMBER).
    """
    current = int(time.time()) if now is None else now
    # 1. Which member claims to have sent it; that member must be known and active.
    sender = unverified_sender(token)
    keys = keys_of(sender)
    # 2. The signature, under that member's published keys only.
    claims = _decode(token, keys, REQUEST_TYPE)
    if claims.get("iss") != sender:
        raise ProtocolError(MALFORMED, "the federation message changed its sender")
    # 3. Meant for this node and this endpoint.
    if claims.get("aud") != audience:
        raise ProtocolError(WRONG_AUDIENCE, "the request is addressed to another node")
    if claims.get("htm") != method.upper() or claims.get("htu") != path:
        raise ProtocolError(WRONG_TARGET, "the request was signed for another endpoint")
    # 4. Fresh: issued recently, not expired, and never valid for longer than the maximum.
    issued = _require_int(claims, "iat")
    expires = _require_int(claims, "exp")
    if expires - issued > MAX_TTL_SECONDS:
        raise ProtocolError(EXPIRED, f"a federation request may live at most {MAX_TTL_SECONDS} s")
    if expires + CLOCK_SKEW_SECONDS < current or issued - CLOCK_SKEW_SECONDS > current:
        raise ProtocolError(EXPIRED, "the request has expired or is not yet valid")
    # 5. The body is the one that was signed.
    if not hmac.compare_digest(_require_str(claims, "bh"), body_hash(body)):
        raise ProtocolError(BODY_HASH_MISMATCH, "the body does not match the signed hash")
    # 6. Last, so an invalid message can never occupy a slot in the cache: never seen before.
    jti = _require_str(claims, "jti")
    if not replay_cache.admit(sender, jti, expires, current):
        raise ProtocolError(REPLAY, "this request has already been received")
    return RequestClaims(
        sender=sender,
        audience=audience,
        jti=jti,
        issued_at=issued,
        expires_at=expires,
        method=method.upper(),
        path=path,
        token=token,
    )


def verify_response(
    token: str | None,
    body: bytes,
    *,
    sender: str,
    audience: str,
    keys: Sequence[Mapping[str, Any]],
    request_token: str,
    now: int | None = None,
) -> ResponseClaims:
    """Check a partner's answer to our request; raise ProtocolError if it must be discarded."""
    current = int(time.time()) if now is None else now
    if not token:
        raise ProtocolError(BAD_SIGNATURE, "the response is not signed")
    # 1. Signed by the partner we asked, under its published keys.
    claims = _decode(token, keys, RESPONSE_TYPE)
    if claims.get("iss") != sender or claims.get("aud") != audience:
        raise ProtocolError(BAD_SIGNATURE, "the response is signed by or for another node")
    # 2. An answer to this very request (X-Road request hash), not one replayed from another.
    if not hmac.compare_digest(_require_str(claims, "rqh"), request_hash(request_token)):
        raise ProtocolError(REQUEST_HASH_MISMATCH, "the response answers another request")
    # 3. Fresh, and the body is the one signed.
    if _require_int(claims, "exp") + CLOCK_SKEW_SECONDS < current:
        raise ProtocolError(EXPIRED, "the response has expired")
    if not hmac.compare_digest(_require_str(claims, "bh"), body_hash(body)):
        raise ProtocolError(BODY_HASH_MISMATCH, "the response body does not match its signature")
    return ResponseClaims(
        sender=sender,
        audience=audience,
        issued_at=_require_int(claims, "iat"),
        status=_require_int(claims, "st"),
    )
