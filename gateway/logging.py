"""Structured logging, configured once per process.

A careless `log.info("x", name=...)` must not leak a name, a phone number or a token: the
`redact_sensitive_values` processor replaces the value of any key that carries personal data or
secrets, at any depth, before a renderer sees the event.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"

# Keys whose values are personal data or secrets. Matched on the lower-cased key with separators
# removed, so `phone_number`, `phoneNumber` and `Phone-Number` all match `phonenumber`.
_SENSITIVE_KEY_PARTS = (
    "name",
    "surname",
    "alias",
    "dob",
    "birth",
    "phone",
    "msisdn",
    "imei",
    "address",
    "postcode",
    "vrm",
    "registration",
    "email",
    "passport",
    "document",
    "text",
    "narrative",
    "justification",
    "term",
    "query",
    "password",
    "secret",
    "token",
    "authorization",
    "cookie",
    "key",
    "pin",
    "conditions",
)
# Keys that contain one of the parts above but are known to be safe identifiers.
_SAFE_KEYS = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "logger",
        "requestid",
        "recordid",
        "keyid",
        "kekversion",
        "clientid",
        "userid",
        "forcecode",
        "nodename",
        "route",
        "method",
        "path",
        "status",
        "durationms",
        "index",
        "size",
        "count",
        "policyids",
        "queryfingerprint",
        "tokentype",
        "kind",
        "indexkind",
        "termkind",
    }
)
_SEPARATORS = re.compile(r"[^a-z0-9]")


def is_sensitive_key(key: str) -> bool:
    normalised = _SEPARATORS.sub("", key.lower())
    if normalised in _SAFE_KEYS:
        return False
    return any(part in normalised for part in _SENSITIVE_KEY_PARTS)


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_sensitive_key(k) else _scrub(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v, depth + 1) for v in value]
    return value


def redact_sensitive_values(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: blank every value under a sensitive key, recursively."""
    for key in list(event_dict):
        if key == "event":
            continue
        if is_sensitive_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def configure_logging(*, json_lines: bool, level: str = "INFO") -> None:
    """Configure structlog and the standard library logging to one output. Idempotent."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_sensitive_values,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s", force=True)
    # uvicorn's access log would print full paths with query strings (which may hold identifiers).
    logging.getLogger("uvicorn.access").disabled = True
    # At DEBUG these print every SQL statement with its parameters (blind indexes, client ids,
    # secret hashes, audit filter values) and, for Authlib, every access token it issues, in
    # full: never below WARNING, whatever the node's level.
    for chatty in ("aiosqlite", "sqlalchemy.engine", "psycopg", "authlib"):
        logging.getLogger(chatty).setLevel(
            max(logging.WARNING, logging.getLevelName(level.upper()))
        )
