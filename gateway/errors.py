"""Errors the gateway raises on purpose, rendered as RFC 9457 problem+json by one set of handlers.

    GatewayError (500)
    ├── BadRequest (400)
    ├── Unauthenticated (401)
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── Gone (410)
    ├── Conflict (409)
    ├── PreconditionFailed (412)
    ├── PayloadTooLarge (413)
    ├── UnprocessableContent (422)
    ├── TooManyRequests (429)
    └── ServiceUnavailable (503)

Every problem has a stable `type` (a URN naming the problem), a human `title` and `detail`, the
`status`, the request `instance` and the request id. Validation problems add `errors`, each with a
JSON pointer to the offending member.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:police-gateway:problem:"

log = structlog.get_logger(__name__)


class GatewayError(Exception):
    status_code = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers or {}


class BadRequest(GatewayError):
    status_code, slug, title = 400, "bad-request", "Bad request"


class Unauthenticated(GatewayError):
    status_code, slug, title = 401, "unauthenticated", "Authentication required"


class Forbidden(GatewayError):
    status_code, slug, title = 403, "forbidden", "Forbidden"


class NotFound(GatewayError):
    status_code, slug, title = 404, "not-found", "Not found"


class Conflict(GatewayError):
    status_code, slug, title = 409, "conflict", "Conflict"


class Gone(GatewayError):
    status_code, slug, title = 410, "gone", "Gone"


class PreconditionFailed(GatewayError):
    status_code, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(GatewayError):
    status_code, slug, title = 413, "payload-too-large", "Request body too large"


class UnprocessableContent(GatewayError):
    status_code, slug, title = 422, "validation-failed", "Request failed validation"


class TooManyRequests(GatewayError):
    status_code, slug, title = 429, "rate-limited", "Too many requests"


class ServiceUnavailable(GatewayError):
    status_code, slug, title = 503, "unavailable", "Service unavailable"

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        # Every 503 here is a fault expected to clear: tell clients when to try again.
        super().__init__(detail, extra=extra, headers={"Retry-After": "1", **(headers or {})})


_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    412: ("precondition-failed", "Precondition failed"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-failed", "Request failed validation"),
    429: ("rate-limited", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


def problem_body(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    request_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    return body


def problem_response(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    request: Request | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    request_id = None
    instance = None
    if request is not None:
        request_id = getattr(request.state, "request_id", None)
        instance = request.url.path
    return JSONResponse(
        problem_body(
            status=status,
            slug=slug,
            title=title,
            detail=detail,
            instance=instance,
            request_id=request_id,
            extra=extra,
        ),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _pointer(loc: tuple[Any, ...]) -> str:
    """JSON pointer (RFC 6901) for a FastAPI error location; the first part names where it was."""
    parts = list(loc)
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "/" + "/".join(escaped) if parts else ""


def install_error_handlers(app: FastAPI) -> None:
    document_problem_responses(app)

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("request.failed", error_type=type(exc).__name__, status=exc.status_code)
        return problem_response(
            status=exc.status_code,
            slug=exc.slug,
            title=exc.title,
            detail=exc.detail,
            request=request,
            extra=exc.extra,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            errors.append(
                {
                    "pointer": _pointer(loc),
                    "in": str(loc[0]) if loc else "body",
                    "detail": str(err.get("msg", "invalid")),
                }
            )
        return problem_response(
            status=422,
            slug="validation-failed",
            title="Request failed validation",
            detail=f"{len(errors)} problem(s) in the request; see `errors`.",
            request=request,
            extra={"errors": errors},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug, title = _STATUS_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(
            status=exc.status_code,
            slug=slug,
            title=title,
            detail=detail,
            request=request,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        fault = unavailable_detail(exc)
        if fault is not None:
            # A store or key fault clears by itself (lock released, disk freed, token back):
            # fail closed with a 503 the caller may retry, never a 500 or partial data.
            log.error("request.unavailable", error_type=type(exc).__name__)
            return problem_response(
                status=503,
                slug="unavailable",
                title="Service unavailable",
                detail=fault,
                request=request,
                headers={"Retry-After": "1"},
            )
        log_unexpected(exc)
        return internal_error_response(request=request)


def unavailable_detail(exc: BaseException) -> str | None:
    """What to tell the caller when `exc` (or what caused it) means a store or key is unusable."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from audit.store.base import AuditUnavailable
    from gateway.keys.errors import KeyStoreError

    seen: BaseException | None = exc
    for _ in range(8):  # a bounded walk: cause chains can be cyclic
        if seen is None:
            break
        if isinstance(seen, AuditUnavailable):
            return "The audit log cannot record this request, so nothing is disclosed; retry."
        if isinstance(seen, KeyStoreError):
            return "The key encryption key provider is unavailable; no record can be opened."
        if isinstance(seen, OperationalError | sqlite3.OperationalError):
            return "The node's database cannot complete the request now; retry."
        seen = seen.__cause__ or seen.__context__
    return None


def log_unexpected(exc: BaseException) -> None:
    """Log an unexpected exception by type and origin only: its message may hold data."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_globals.get('__name__', '?')}:{tb.tb_lineno}" if tb else "?"
    log.error("request.crashed", error_type=type(exc).__name__, where=where)


def internal_error_body(*, instance: str | None, request_id: str | None) -> dict[str, Any]:
    return problem_body(
        status=500,
        slug="internal-error",
        title="Internal error",
        detail="The node could not complete the request. It has been logged.",
        instance=instance,
        request_id=request_id,
    )


def internal_error_response(*, request: Request) -> JSONResponse:
    return JSONResponse(
        internal_error_body(
            instance=request.url.path, request_id=getattr(request.state, "request_id", None)
        ),
        status_code=500,
        media_type=PROBLEM_MEDIA_TYPE,
    )


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; validation problems add `errors`.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}


def document_problem_responses(app: FastAPI) -> None:
    """Make the OpenAPI document say what the handlers above send: every error is problem+json.

    FastAPI documents its 422 as `application/json` (HTTPValidationError), which is not what a
    client receives; a client generated from the document would mis-parse every error.
    """
    generate = app.openapi
    rewritten = False

    def openapi() -> dict[str, Any]:
        nonlocal rewritten
        document = generate()  # FastAPI caches the document on the app
        if rewritten:
            return document
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                for code, response in operation.get("responses", {}).items():
                    if code[:1] in {"4", "5"}:
                        response["content"] = dict(problem)
        text = json.dumps(document)
        for unused in ("HTTPValidationError", "ValidationError"):
            if f'"#/components/schemas/{unused}"' not in text:
                schemas.pop(unused, None)
                text = json.dumps(document)
        rewritten = True
        return document

    app.openapi = openapi  # type: ignore[method-assign]
