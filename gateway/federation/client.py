"""Calling partner nodes: signed requests, verified responses, a circuit breaker per partner.

`PartnerClient.call` returns a `PartnerReply` or raises `PartnerFailure` whose `status` is one of
the statuses an analyst sees (unreachable, timeout, bad_signature, denied, error).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import structlog

from gateway.federation.manifest import Member
from gateway.federation.protocol import (
    SIGNATURE_HEADER,
    ProtocolError,
    sign_request,
    verify_response,
)
from gateway.node import Node

log = structlog.get_logger(__name__)


class PartnerFailure(Exception):
    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class CircuitBreaker:
    """Stops calling a partner that keeps failing, then lets one trial call through.

    Hand-written: the state is three numbers per partner, and the async breaker libraries on PyPI
    wrap calls in ways that fight our per-call deadline.
    """

    failure_threshold: int = 3
    cooldown_seconds: float = 15.0
    failures: int = 0
    opened_at: float | None = None
    _trial_in_flight: bool = field(default=False, repr=False)

    def allow(self, now: float | None = None) -> bool:
        if self.opened_at is None:
            return True
        current = time.monotonic() if now is None else now
        if current - self.opened_at < self.cooldown_seconds or self._trial_in_flight:
            return False
        self._trial_in_flight = True  # half-open: exactly one trial
        return True

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial_in_flight = False

    def record_failure(self, now: float | None = None) -> None:
        self.failures += 1
        self._trial_in_flight = False
        if self.failures >= self.failure_threshold:
            self.opened_at = time.monotonic() if now is None else now

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None


@dataclass
class PartnerReply:
    status_code: int
    body: dict[str, Any]


class PartnerClient:
    """Partner calls of a node: one HTTP connection pool per partner.

    One pool per partner rather than one shared pool: httpx scans its pool on every request, so a
    shared pool's cost grows with the number of partners (measured in bench/national_sim.py), and
    a slow partner cannot take connections from the others.
    """

    def __init__(self, node: Node, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.node = node
        self._transport = transport
        self._pools: dict[str, httpx.AsyncClient] = {}
        self.breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, force: str) -> CircuitBreaker:
        return self.breakers.setdefault(force, CircuitBreaker())

    def pool(self, force: str) -> httpx.AsyncClient:
        client = self._pools.get(force)
        if client is None:
            client = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self.node.settings.partner_deadline_seconds),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                follow_redirects=False,
            )
            self._pools[force] = client
        return client

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for client in pools:
            await client.aclose()

    async def call(
        self, member: Member, method: str, path: str, payload: dict[str, Any] | None
    ) -> PartnerReply:
        """Send one signed request; verify and decode the signed answer."""
        breaker = self.breaker(member.force_code)
        if not breaker.allow():
            raise PartnerFailure("unreachable", "circuit open after repeated failures")
        try:
            reply = await self._call(member, method, path, payload)
        except PartnerFailure as exc:
            if exc.status in ("unreachable", "timeout", "error"):
                breaker.record_failure()
            else:
                breaker.record_success()
            raise
        except BaseException:
            # Cancelled by the fan-out deadline: the partner was too slow.
            breaker.record_failure()
            raise
        breaker.record_success()
        return reply

    async def _call(
        self, member: Member, method: str, path: str, payload: dict[str, Any] | None
    ) -> PartnerReply:
        settings = self.node.settings
        body = b"" if payload is None else orjson.dumps(payload)
        token = sign_request(
            self.node.signing_key,
            sender=settings.force_code,
            audience=member.force_code,
            method=method,
            path=path,
            body=body,
        )
        headers = {SIGNATURE_HEADER: token}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        url = member.node_url.rstrip("/") + path
        try:
            response = await self.pool(member.force_code).request(
                method, url, content=body, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise PartnerFailure("timeout", "the partner did not answer in time") from exc
        except httpx.TransportError as exc:
            raise PartnerFailure("unreachable", type(exc).__name__) from exc
        if response.status_code in (401, 403):
            raise PartnerFailure(
                "denied", f"the partner refused the request ({response.status_code})"
            )
        if response.status_code >= 300:
            raise PartnerFailure("error", f"the partner answered {response.status_code}")
        try:
            verify_response(
                response.headers.get(SIGNATURE_HEADER),
                response.content,
                sender=member.force_code,
                audience=settings.force_code,
                keys=member.signing_keys,
                request_token=token,
            )
        except ProtocolError as exc:
            log.warning("federation.response_discarded", force=member.force_code, reason=exc.reason)
            raise PartnerFailure("bad_signature", exc.reason) from exc
        try:
            decoded = orjson.loads(response.content)
        except ValueError as exc:
            raise PartnerFailure("error", "the partner's answer is not JSON") from exc
        if not isinstance(decoded, dict):
            raise PartnerFailure("error", "the partner's answer is not a JSON object")
        return PartnerReply(status_code=response.status_code, body=decoded)
