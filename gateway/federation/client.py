"""Calling partner nodes: signed requests, verified responses, a circuit breaker per partner.

`PartnerClient.call` returns a `PartnerReply` or raises `PartnerFailure` whose `status` is one of
the statuses an analyst sees (unreachable, timeout, bad_signature, denied, error). A signed answer
is returned only if its signature binds the HTTP status it came with; besides 2xx, only the
statuses the caller accepts (a witness's signed 409 with the size it knows) are returned.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import httpx
import orjson
import structlog

from gateway.federation.manifest import Member
from gateway.federation.protocol import (
    BAD_SIGNATURE,
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


@dataclass(frozen=True)
class RawAnswer:
    """A partner's HTTP answer before it is checked: status, signature header, body bytes."""

    status_code: int
    signature: str | None
    content: bytes


async def _read_capped(chunks: AsyncIterator[bytes], cap: int) -> bytes:
    """The whole body, or PartnerFailure as soon as it grows past `cap` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise PartnerFailure("error", f"the partner's answer is larger than {cap} bytes")
        parts.append(chunk)
    return b"".join(parts)


class _Sender(Protocol):
    async def send(
        self, force: str, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> RawAnswer: ...

    async def aclose(self) -> None: ...


class AiohttpSender:
    """Partner calls over aiohttp: what a serving node uses.

    aiohttp rather than httpx here because a partner call is on the path of every federated
    search: measured on loopback, aiohttp spends about 0.09 ms of CPU on a call where httpx spends
    about 1.2 ms (bench figures in docs/benchmarks.md).

    One session (connection pool) per partner rather than one shared pool, so a slow partner
    cannot take connections from the others.
    """

    def __init__(self, *, deadline: float, max_answer_bytes: int) -> None:
        self._deadline = deadline
        self._cap = max_answer_bytes
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, force: str) -> aiohttp.ClientSession:
        session = self._sessions.get(force)
        if session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32),
                timeout=aiohttp.ClientTimeout(total=self._deadline),
                # Partners have no business setting cookies, and no proxy stands between nodes
                # unless the operator's network puts one there transparently.
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
            self._sessions[force] = session
        return session

    async def send(
        self, force: str, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> RawAnswer:
        try:
            async with self._session(force).request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as response:
                if response.content_length is not None and response.content_length > self._cap:
                    raise PartnerFailure(
                        "error", f"the partner's answer is larger than {self._cap} bytes"
                    )
                content = await _read_capped(response.content.iter_any(), self._cap)
                return RawAnswer(response.status, response.headers.get(SIGNATURE_HEADER), content)
        except TimeoutError as exc:
            raise PartnerFailure("timeout", "the partner did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise PartnerFailure("unreachable", type(exc).__name__) from exc

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


class HttpxSender:
    """Partner calls through an httpx transport: in-process nodes over ASGI in the tests, and the
    simulations in bench/, route partner calls this way. Same statuses as `AiohttpSender`
    (tests/federation/test_partner_senders.py runs both against the same broken partners)."""

    def __init__(
        self, transport: httpx.AsyncBaseTransport, *, deadline: float, max_answer_bytes: int
    ) -> None:
        self._transport = transport
        self._deadline = deadline
        self._cap = max_answer_bytes
        self._pools: dict[str, httpx.AsyncClient] = {}

    def _pool(self, force: str) -> httpx.AsyncClient:
        client = self._pools.get(force)
        if client is None:
            client = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self._deadline),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                follow_redirects=False,
            )
            self._pools[force] = client
        return client

    async def send(
        self, force: str, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> RawAnswer:
        try:
            async with self._pool(force).stream(
                method, url, content=body, headers=headers
            ) as response:
                content = await _read_capped(response.aiter_bytes(), self._cap)
                return RawAnswer(
                    response.status_code, response.headers.get(SIGNATURE_HEADER), content
                )
        except httpx.TimeoutException as exc:
            raise PartnerFailure("timeout", "the partner did not answer in time") from exc
        except httpx.TransportError as exc:
            raise PartnerFailure("unreachable", type(exc).__name__) from exc

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for client in pools:
            await client.aclose()


class PartnerClient:
    """Partner calls of a node: signing, the HTTP call, checking the signed answer.

    Without a transport, calls go over the network through aiohttp (`AiohttpSender`); with an
    httpx transport (tests, simulations), through it (`HttpxSender`).
    """

    def __init__(self, node: Node, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.node = node
        deadline = node.settings.partner_deadline_seconds
        cap = node.settings.max_partner_answer_bytes
        self._sender: _Sender = (
            AiohttpSender(deadline=deadline, max_answer_bytes=cap)
            if transport is None
            else HttpxSender(transport, deadline=deadline, max_answer_bytes=cap)
        )
        self.breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, force: str) -> CircuitBreaker:
        return self.breakers.setdefault(force, CircuitBreaker())

    async def aclose(self) -> None:
        await self._sender.aclose()

    async def call(
        self,
        member: Member,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        *,
        accept: Collection[int] = (),
    ) -> PartnerReply:
        """Send one signed request; verify and decode the signed answer. A signed answer with a
        status in `accept` is returned like a 2xx one; any other status of 300 or more fails."""
        breaker = self.breaker(member.force_code)
        if not breaker.allow():
            raise PartnerFailure("unreachable", "circuit open after repeated failures")
        try:
            reply = await self._call(member, method, path, payload, accept)
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
        self,
        member: Member,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        accept: Collection[int],
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
        answer = await self._sender.send(member.force_code, method, url, headers, body)
        if answer.status_code in (401, 403):
            raise PartnerFailure(
                "denied", f"the partner refused the request ({answer.status_code})"
            )
        # An unsigned refusal (problem+json) is an error even with a status the caller accepts.
        if answer.status_code >= 300 and not (answer.status_code in accept and answer.signature):
            raise PartnerFailure("error", f"the partner answered {answer.status_code}")
        try:
            claims = verify_response(
                answer.signature,
                answer.content,
                sender=member.force_code,
                audience=settings.force_code,
                keys=member.signing_keys,
                request_token=token,
            )
            if claims.status != answer.status_code:
                raise ProtocolError(
                    BAD_SIGNATURE, "the response was signed with another HTTP status"
                )
        except ProtocolError as exc:
            log.warning("federation.response_discarded", force=member.force_code, reason=exc.reason)
            raise PartnerFailure("bad_signature", exc.reason) from exc
        try:
            decoded = orjson.loads(answer.content)
        except ValueError as exc:
            raise PartnerFailure("error", "the partner's answer is not JSON") from exc
        if not isinstance(decoded, dict):
            raise PartnerFailure("error", "the partner's answer is not a JSON object")
        return PartnerReply(status_code=answer.status_code, body=decoded)
