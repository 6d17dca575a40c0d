"""Rate limits per caller: answer 429 problem+json with `Retry-After` when a caller is over.

Callers are told apart by who they provably are, never by what they merely claim:

- a force system by the client id in a valid access token of this node;
- an analyst by force and user id in a valid token from an issuer the manifest trusts;
- a partner node (`/federation/...`) by its address, under its own (higher) limit, because its
  signature covers the body and is checked by the endpoint;
- anyone else (no token, or one that does not verify) by client address.

An unverified `sub` would let a caller pick a fresh bucket per request, so tokens are verified
here (an Ed25519 check, ~0.1 ms) before their subject keys a bucket. Counting is done by the
`limits` library (moving window, in memory): each app replica limits on its own, so a limit of
N per replica admits up to N x replicas in total (see docs/operator.md).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import PROBLEM_MEDIA_TYPE, problem_body

log = structlog.get_logger(__name__)

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
FEDERATION_PREFIX = "/federation/"


@dataclass(frozen=True)
class RateLimits:
    """Limits in the `limits` notation, e.g. "600/minute" or "20/second;1000/hour"."""

    client: str = "50000/minute"
    analyst: str = "30/second;1200/minute"
    anonymous: str = "30/second"
    partner: str = "1000/second"

    def parsed(self) -> dict[str, list[RateLimitItem]]:
        out: dict[str, list[RateLimitItem]] = {}
        for caller in ("client", "analyst", "anonymous", "partner"):
            text: str = getattr(self, caller)
            out[caller] = [parse(part.strip()) for part in text.split(";") if part.strip()]
        return out


def check_rate_limit_text(value: str) -> str:
    """Validate a limit string at settings time (a typo must stop the node, not disable limits)."""
    items = [part.strip() for part in value.split(";") if part.strip()]
    if not items:
        raise ValueError("a rate limit needs at least one 'N/period'")
    for item in items:
        parse(item)
    return value


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            header: str = bytes(value).decode("latin-1")
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def identify_caller(scope: Scope, node: Any) -> tuple[str, str]:
    """(kind of caller, bucket key). The key holds ids and addresses, never a token."""
    path = str(scope.get("path", ""))
    address = _client_address(scope)
    if path.startswith(FEDERATION_PREFIX):
        return "partner", f"partner:{address}"
    token = _bearer(scope)
    if token is None or node is None:
        return "anonymous", f"ip:{address}"
    from gateway.identity.tokens import InvalidToken, verify_token

    issuer = node.settings.node_url
    try:
        claims = verify_token(token, [node.signing_key], issuer=issuer, audience=issuer)
    except InvalidToken:
        pass
    else:
        return "client", f"client:{claims.subject}"
    holder = getattr(node, "manifest", None)
    if holder is not None:
        from gateway.identity.analysts import AnalystTokenError, analyst_verifier

        try:
            principal = await analyst_verifier(Request(scope), node).verify(token, holder.current)
        except AnalystTokenError:
            pass
        else:
            return "analyst", f"analyst:{principal.force}:{principal.user_id}"
    return "anonymous", f"ip:{address}"


class RateLimitMiddleware:
    """ASGI middleware enforcing `RateLimits`; `node_of(scope)` gives the running node (or None
    while it starts), whose keys verify tokens."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: RateLimits,
        node_of: Callable[[Scope], Any],
        on_limited: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.items = limits.parsed()
        self.node_of = node_of
        self.on_limited = on_limited
        self.clock = clock
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        caller, key = await identify_caller(scope, self.node_of(scope))
        for item in self.items[caller]:
            if not self.limiter.hit(item, key):
                stats = self.limiter.get_window_stats(item, key)
                retry_after = max(1, math.ceil(stats.reset_time - self.clock()))
                if self.on_limited is not None:
                    self.on_limited(caller)
                log.info("ratelimit.refused", caller=caller, retry_after=retry_after)
                await _send_429(send, scope, retry_after, str(item))
                return
        await self.app(scope, receive, send)


async def _send_429(send: Send, scope: Scope, retry_after: int, limit: str) -> None:
    body = problem_body(
        status=429,
        slug="rate-limited",
        title="Too many requests",
        detail=f"Over the limit of {limit} for this caller; retry after {retry_after} s.",
        instance=scope.get("path"),
        request_id=scope.get("state", {}).get("request_id"),
        extra={"retry_after": retry_after},
    )
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
