"""ASGI middleware: request ids and bounded request bodies.

Written as plain ASGI (not BaseHTTPMiddleware) so that streamed bodies stay streamed and the size
limit is enforced on the bytes actually received, whatever Content-Length claims.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import (
    PROBLEM_MEDIA_TYPE,
    internal_error_body,
    log_unexpected,
    problem_body,
    unavailable_detail,
)

log = structlog.get_logger(__name__)

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    """Bind a request id to the log context and echo it in `X-Request-ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if incoming and _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Answer here rather than in Starlette's outermost handler, so the problem carries
            # the request id header like every other response.
            if started:
                raise
            status, extra_headers = 500, []
            fault = unavailable_detail(exc)
            if fault is None:
                log_unexpected(exc)
                body = internal_error_body(instance=scope.get("path"), request_id=request_id)
            else:
                # A store or key fault that clears by itself: fail closed with a retryable 503.
                log.error("request.unavailable", error_type=type(exc).__name__)
                status, extra_headers = 503, [(b"retry-after", b"1")]
                body = problem_body(
                    status=503,
                    slug="unavailable",
                    title="Service unavailable",
                    detail=fault,
                    instance=scope.get("path"),
                    request_id=request_id,
                )
            payload = json.dumps(body).encode()
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                        (b"content-length", str(len(payload)).encode()),
                        *extra_headers,
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": payload})
        finally:
            structlog.contextvars.clear_contextvars()


class BodySizeLimitMiddleware:
    """Answer 413 problem+json when a request body exceeds its limit.

    `limit_for(path)` gives the limit per path, so bulk upload can allow more than ordinary calls.
    """

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        request_id = scope.get("state", {}).get("request_id")
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _send_413(send, limit, scope.get("path", ""), request_id)
                    return
        received = 0
        exceeded = False

        async def limited_receive() -> Message:
            # Past the limit, tell the app the client went away: whatever the app then answers
            # is replaced by the 413 below (apps catch exceptions raised while reading bodies).
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        replaced = False

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if exceeded and message["type"] == "http.response.start":
                replaced = True
                await _send_413(send, limit, scope.get("path", ""), request_id)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # A streaming endpoint sees the simulated disconnect as an error: still answer 413.
            if not exceeded or replaced:
                raise
            await _send_413(send, limit, scope.get("path", ""), request_id)


async def _send_413(send: Send, limit: int, path: str, request_id: Any) -> None:
    body = problem_body(
        status=413,
        slug="payload-too-large",
        title="Request body too large",
        detail=f"The request body exceeds the limit of {limit} bytes for this route.",
        instance=path,
        request_id=request_id,
    )
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
