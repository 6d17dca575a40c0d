"""The audit entry model and its one byte encoding (RFC 8785 canonical JSON).

An entry records one DPA 2018 s.62 operation (collect, alter, consult, disclose, combine, erase) or
one security event. The leaf a log commits to is ``leaf_hash(encode_entry(entry))``, so the
encoding is fixed: canonical JSON, ``None`` and empty lists omitted, times as RFC 3339 UTC with
microseconds and ``Z``. Sensitive free text lives only inside ``sealed``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeAlias

import rfc8785

from audit.errors import EntryError, SealingError
from audit.merkle import leaf_hash
from audit.sealing import SealedPayload
from schemas.enums import S62Operation

__all__ = [
    "ENTRY_VERSION",
    "Actor",
    "AuditEntry",
    "EntryKind",
    "JsonValue",
    "RecordRef",
    "SecurityEvent",
    "canonical_json",
    "decode_entry",
    "encode_entry",
    "entry_leaf",
    "format_time",
    "sealing_context",
]

ENTRY_VERSION = 1

JsonValue: TypeAlias = str | int | bool | Sequence["JsonValue"] | Mapping[str, "JsonValue"] | None


class SecurityEvent(StrEnum):
    """Audit-worthy events that are not s.62 operations on records."""

    AUTH_FAILURE = "auth_failure"
    POLICY_CHANGE = "policy_change"
    KEY_ROTATION = "key_rotation"
    AUDIT_ACCESS = "audit_access"
    # The requesting node's entry closing a federated search, holding the partners' receipts.
    SEARCH_COMPLETED = "search_completed"


EntryKind: TypeAlias = S62Operation | SecurityEvent

_HEX = re.compile(r"[0-9a-f]+")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with exactly six fractional digits and ``Z``: one spelling per instant."""
    if moment.tzinfo is None:
        raise EntryError("entry times must be timezone-aware")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse_time(text: str) -> datetime:
    if not _TIME_PATTERN.fullmatch(text):
        raise EntryError("entry time must be RFC 3339 UTC with six fractional digits and Z")
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _parse_kind(text: str) -> EntryKind:
    try:
        return S62Operation(text)
    except ValueError:
        pass
    try:
        return SecurityEvent(text)
    except ValueError:
        raise EntryError(f"unknown entry kind {text!r}") from None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: an analyst (user_id) and/or a force system (client_id)."""

    user_id: str | None = None
    force: str | None = None
    roles: tuple[str, ...] = ()
    vetting: str | None = None
    client_id: str | None = None

    def to_json(self) -> dict[str, JsonValue]:
        raw: dict[str, JsonValue] = {
            "user_id": self.user_id,
            "force": self.force,
            "roles": list(self.roles),
            "vetting": self.vetting,
            "client_id": self.client_id,
        }
        return _prune(raw)

    @classmethod
    def from_json(cls, value: object) -> Actor:
        obj = _object(value, "actor", {"user_id", "force", "roles", "vetting", "client_id"})
        return cls(
            user_id=_opt_str(obj, "user_id"),
            force=_opt_str(obj, "force"),
            roles=_str_tuple(obj, "roles"),
            vetting=_opt_str(obj, "vetting"),
            client_id=_opt_str(obj, "client_id"),
        )


@dataclass(frozen=True, slots=True)
class RecordRef:
    """One record version an operation touched or disclosed."""

    force: str
    record_id: str
    version: int

    def to_json(self) -> dict[str, JsonValue]:
        return {"force": self.force, "record_id": self.record_id, "version": self.version}

    @classmethod
    def from_json(cls, value: object) -> RecordRef:
        obj = _object(value, "record", {"force", "record_id", "version"})
        version = obj.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise EntryError("record version must be a non-negative integer")
        force, record_id = _opt_str(obj, "force"), _opt_str(obj, "record_id")
        if force is None or record_id is None:
            raise EntryError("a record reference needs force and record_id")
        return cls(force=force, record_id=record_id, version=version)


# Which optional fields each kind cannot do without (DPA 2018 s.62(2)-(3): consultation and
# disclosure logs must let the justification, time, person and recipients be established).
_REQUIRED: dict[EntryKind, tuple[str, ...]] = {
    S62Operation.COLLECT: ("actor", "records"),
    S62Operation.ALTER: ("actor", "records"),
    S62Operation.ERASE: ("actor", "records"),
    S62Operation.CONSULT: ("actor", "purpose"),
    S62Operation.DISCLOSE: ("actor", "purpose", "recipient_force"),
    S62Operation.COMBINE: ("actor", "purpose", "records"),
    SecurityEvent.AUTH_FAILURE: (),
    SecurityEvent.POLICY_CHANGE: ("policy_hash",),
    SecurityEvent.KEY_ROTATION: (),
    SecurityEvent.AUDIT_ACCESS: ("actor",),
    SecurityEvent.SEARCH_COMPLETED: ("actor", "request_id"),
}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit log entry. Construct with keyword arguments; validation happens on creation."""

    time: datetime
    node: str
    kind: EntryKind
    actor: Actor | None = None
    purpose: str | None = None
    case_ref: str | None = None
    query_fingerprint: str | None = None
    decision: str | None = None
    policy_ids: tuple[str, ...] = ()
    policy_hash: str | None = None
    records: tuple[RecordRef, ...] = ()
    fields_withheld: tuple[str, ...] = ()
    recipient_force: str | None = None
    request_id: str | None = None
    partner_request_id: str | None = None
    receipts: tuple[Mapping[str, JsonValue], ...] = field(default=())
    sealed: SealedPayload | None = None
    version: int = ENTRY_VERSION

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise EntryError("entry times must be timezone-aware")
        if not self.node:
            raise EntryError("an entry names the node (force code) that wrote it")
        if self.version != ENTRY_VERSION:
            raise EntryError(f"unsupported entry version {self.version}")
        if self.query_fingerprint is not None and not _HEX.fullmatch(self.query_fingerprint):
            raise EntryError("query_fingerprint must be lowercase hex")
        for name in _REQUIRED[self.kind]:
            if not getattr(self, name):
                raise EntryError(f"a {self.kind.value} entry needs {name}")
        if (
            "actor" in _REQUIRED[self.kind]
            and self.actor is not None
            and not (self.actor.user_id or self.actor.client_id)
        ):
            raise EntryError(f"a {self.kind.value} entry's actor needs a user_id or client_id")

    def to_json(self) -> dict[str, JsonValue]:
        """The JSON object this entry encodes to (before canonicalisation)."""
        raw: dict[str, JsonValue] = {
            "v": self.version,
            "time": format_time(self.time),
            "node": self.node,
            "kind": self.kind.value,
            "actor": self.actor.to_json() if self.actor else None,
            "purpose": self.purpose,
            "case_ref": self.case_ref,
            "query_fingerprint": self.query_fingerprint,
            "decision": self.decision,
            "policy_ids": list(self.policy_ids),
            "policy_hash": self.policy_hash,
            "records": [record.to_json() for record in self.records],
            "fields_withheld": list(self.fields_withheld),
            "recipient_force": self.recipient_force,
            "request_id": self.request_id,
            "partner_request_id": self.partner_request_id,
            "receipts": [dict(receipt) for receipt in self.receipts],
            "sealed": dict(self.sealed.to_json()) if self.sealed else None,
        }
        return _prune(raw)

    @classmethod
    def from_json(cls, value: object) -> AuditEntry:
        """Build an entry from its JSON object; raise ``EntryError`` on anything unexpected."""
        obj = _object(value, "entry", _ENTRY_KEYS)
        version = obj.get("v")
        if not isinstance(version, int) or isinstance(version, bool):
            raise EntryError("entry has no integer version 'v'")
        time_text, node, kind = (_opt_str(obj, key) for key in ("time", "node", "kind"))
        if time_text is None or node is None or kind is None:
            raise EntryError("an entry needs time, node and kind")
        actor = obj.get("actor")
        receipts = obj.get("receipts", [])
        if not isinstance(receipts, list) or not all(isinstance(r, dict) for r in receipts):
            raise EntryError("receipts must be a list of objects")
        records = obj.get("records", [])
        if not isinstance(records, list):
            raise EntryError("records must be a list")
        sealed = obj.get("sealed")
        try:
            sealed_payload = (
                SealedPayload.from_json(_object(sealed, "sealed", None))
                if sealed is not None
                else None
            )
        except SealingError as exc:
            raise EntryError(str(exc)) from exc
        return cls(
            version=version,
            time=_parse_time(time_text),
            node=node,
            kind=_parse_kind(kind),
            actor=Actor.from_json(actor) if actor is not None else None,
            purpose=_opt_str(obj, "purpose"),
            case_ref=_opt_str(obj, "case_ref"),
            query_fingerprint=_opt_str(obj, "query_fingerprint"),
            decision=_opt_str(obj, "decision"),
            policy_ids=_str_tuple(obj, "policy_ids"),
            policy_hash=_opt_str(obj, "policy_hash"),
            records=tuple(RecordRef.from_json(record) for record in records),
            fields_withheld=_str_tuple(obj, "fields_withheld"),
            recipient_force=_opt_str(obj, "recipient_force"),
            request_id=_opt_str(obj, "request_id"),
            partner_request_id=_opt_str(obj, "partner_request_id"),
            receipts=tuple(receipts),
            sealed=sealed_payload,
        )


_ENTRY_KEYS = {
    "v",
    "time",
    "node",
    "kind",
    "actor",
    "purpose",
    "case_ref",
    "query_fingerprint",
    "decision",
    "policy_ids",
    "policy_hash",
    "records",
    "fields_withheld",
    "recipient_force",
    "request_id",
    "partner_request_id",
    "receipts",
    "sealed",
}


_JS_SAFE_INT = 2**53 - 1


def _plain(value: object) -> bool:
    """Whether `value` holds only JSON types for which RFC 8785 is a compact, key-sorted
    encoding: strings, booleans, null, integers within +-(2**53 - 1), lists and objects with
    ASCII string keys (no floats, whose RFC 8785 form is ECMAScript's number formatting; no
    other keys, which RFC 8785 sorts by UTF-16 code unit rather than by code point)."""
    if value is None or value is True or value is False or isinstance(value, str):
        return True
    if type(value) is int:
        return -_JS_SAFE_INT <= value <= _JS_SAFE_INT
    if type(value) is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    if type(value) is list or type(value) is tuple:
        return all(_plain(v) for v in value)
    return False


def canonical_json(value: object) -> bytes:
    """RFC 8785 canonical JSON of `value`, the same bytes as `rfc8785.dumps`.

    The pure-Python rfc8785 encoder costs tens of microseconds per entry, several times over
    per federated search (a completion entry holds the partners' checkpoint notes, whose
    signature lines start with an em dash). For plain values (`_plain`), RFC 8785 is exactly
    the standard library's compact, key-sorted encoding, in UTF-8: the same member order (ASCII
    keys sort alike by UTF-16 unit and by code point), the same string escapes (quote,
    backslash, the short forms of \\b \\f \\n \\r \\t, other control characters as
    lower-case six-character escapes, every other character as itself), the same integers.
    A lone surrogate cannot be UTF-8, and anything not plain, go to rfc8785
    (tests/audit/test_receipt_checkpoints.py checks that the two agree). Raises
    rfc8785.CanonicalizationError as rfc8785 does."""
    if _plain(value):
        quick = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        try:
            return quick.encode("utf-8")
        except UnicodeEncodeError:
            pass
    return rfc8785.dumps(value)  # type: ignore[arg-type]


def encode_entry(entry: AuditEntry) -> bytes:
    """The entry's bytes as the log stores and hashes them: RFC 8785 canonical JSON."""
    try:
        return canonical_json(entry.to_json())
    except rfc8785.CanonicalizationError as exc:
        raise EntryError(f"entry cannot be canonicalised: {exc}") from exc


def decode_entry(data: bytes) -> AuditEntry:
    """Parse stored entry bytes; raise ``EntryError`` unless they are exactly canonical."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EntryError("entry bytes are not JSON") from exc
    entry = AuditEntry.from_json(value)
    # Re-encoding must give back the very bytes the leaf committed to; anything else means the
    # bytes were written by something other than encode_entry.
    if encode_entry(entry) != data:
        raise EntryError("entry bytes are not the canonical encoding of the entry")
    return entry


def entry_leaf(entry: AuditEntry) -> bytes:
    """The Merkle leaf hash committing to ``entry``."""
    return leaf_hash(encode_entry(entry))


def sealing_context(node: str, request_id: str | None) -> bytes:
    """Associated data binding a sealed payload to the node and request it was written for.

    Both values sit in the entry outside the ciphertext, so an auditor can rebuild the context to
    unseal, and a payload copied into another entry fails to open.
    """
    return b"audit-entry/v1\n" + node.encode("utf-8") + b"\n" + (request_id or "").encode("utf-8")


# --- JSON shape checks (hand-written: the library stays free of pydantic at the hash boundary) --


def _prune(raw: dict[str, JsonValue]) -> dict[str, JsonValue]:
    return {key: value for key, value in raw.items() if value is not None and value != []}


def _object(value: object, what: str, allowed: set[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EntryError(f"{what} must be a JSON object")
    if allowed is not None:
        unknown = set(value) - allowed
        if unknown:
            raise EntryError(f"{what} has unknown fields {sorted(unknown)}")
    return value


def _opt_str(obj: Mapping[str, object], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EntryError(f"{key} must be a string")
    return value


def _str_tuple(obj: Mapping[str, object], key: str) -> tuple[str, ...]:
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise EntryError(f"{key} must be a list of strings")
    return tuple(value)
