"""Validating incoming records: one JSON object, or an NDJSON stream of them.

Errors are reported as (RFC 6901 JSON pointer, reason) pairs so a force system can find the field
at fault in its own payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from schemas.records import Record

RecordError = tuple[str, str]

# One record line is a few kilobytes; a megabyte is already far outside any real record.
DEFAULT_MAX_LINE_BYTES = 1_000_000

_RECORD_ADAPTER: TypeAdapter[Record] = TypeAdapter(Record)


class RecordValidationError(ValueError):
    """A record failed validation; `.errors` lists (JSON pointer, reason) pairs."""

    def __init__(self, errors: list[RecordError]) -> None:
        self.errors = errors
        summary = "; ".join(f"{pointer or '/'}: {reason}" for pointer, reason in errors[:5])
        super().__init__(f"invalid record: {summary}")


def escape_pointer_token(token: str | int) -> str:
    """One reference token escaped per RFC 6901 (`~` -> `~0`, `/` -> `~1`)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer_from_parts(parts: Iterable[str | int]) -> str:
    return "".join("/" + escape_pointer_token(part) for part in parts)


def _error_pointer(error: ErrorDetails, data: Mapping[str, Any]) -> str:
    loc: list[str | int] = list(error["loc"])
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return "/kind"
    # The discriminated union puts the record kind in front of the location; it is not a field.
    if loc and loc[0] == data.get("kind"):
        loc = loc[1:]
    ctx = error.get("ctx") or {}
    if error["type"] == "record_rule" and ctx.get("at"):
        loc.extend(str(ctx["at"]).split("/"))
    return pointer_from_parts(loc)


_CLEARER_MESSAGES = {
    "union_tag_invalid": "unknown record kind",
    "union_tag_not_found": "record kind is missing",
}


def _errors_from(exc: ValidationError, data: Mapping[str, Any]) -> list[RecordError]:
    return [
        (_error_pointer(error, data), _CLEARER_MESSAGES.get(error["type"], error["msg"]))
        for error in exc.errors()
    ]


def parse_record(data: Mapping[str, Any]) -> Record:
    """Validate plain JSON data as a record of any v1 kind; raises RecordValidationError."""
    try:
        return _RECORD_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise RecordValidationError(_errors_from(exc, data)) from None


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """The outcome for one NDJSON line: a record, or the errors that stopped it."""

    line: int  # 1-based
    record: Record | None
    errors: list[RecordError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.record is not None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


_LONG_DIGIT_RUN = re.compile(r"[0-9]{20}")


def load_json_text(text: str) -> Any:
    """`json.loads` of one line, NaN and infinities refused, in the same way and with the same
    result, through orjson when orjson can read it (several times faster).

    Whatever orjson accepts, `json.loads` accepts with an equal value (tests/schemas check this
    with generated input); what orjson refuses (lone surrogates, numbers beyond a double, bad
    JSON) goes to `json.loads`, which then accepts it or raises as it always did, so the error
    messages and the values stay those of `json.loads`."""
    # orjson reads integers beyond 64 bits as floats where json.loads keeps them exact: any run
    # of 20 digits (even inside a string) sends the line to json.loads.
    if _LONG_DIGIT_RUN.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text, parse_constant=_reject_constant)


def parse_line(
    raw: bytes | str, number: int, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> ParsedLine | None:
    """The outcome for one NDJSON line numbered `number` (None for a blank line)."""
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > max_line_bytes:
        return ParsedLine(number, None, [("", f"line is longer than {max_line_bytes} bytes")])
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return ParsedLine(number, None, [("", "line is not valid UTF-8")])
    else:
        text = raw
    if not text.strip():
        return None
    try:
        data = load_json_text(text)
    except ValueError as exc:
        return ParsedLine(number, None, [("", f"invalid JSON: {exc}")])
    except RecursionError:
        # Thousands of nested brackets exhaust the parser's stack: a bad line, not a crash.
        return ParsedLine(number, None, [("", "invalid JSON: nested too deeply")])
    if not isinstance(data, dict):
        return ParsedLine(number, None, [("", "line is not a JSON object")])
    try:
        return ParsedLine(number, parse_record(data))
    except RecordValidationError as exc:
        return ParsedLine(number, None, exc.errors)


def parse_ndjson(
    lines: Iterable[bytes | str], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[ParsedLine]:
    """Parse an NDJSON stream line by line; blank lines are skipped, bad lines reported, never
    raised, so one bad line does not stop a bulk load."""
    for number, raw in enumerate(lines, start=1):
        parsed = parse_line(raw, number, max_line_bytes=max_line_bytes)
        if parsed is not None:
            yield parsed
