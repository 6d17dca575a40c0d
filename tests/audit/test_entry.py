"""Audit entries: canonical encoding, strict decoding, the s.62 rules each kind must satisfy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import rfc8785

from audit.entry import (
    Actor,
    AuditEntry,
    RecordRef,
    SecurityEvent,
    decode_entry,
    encode_entry,
    entry_leaf,
)
from audit.errors import EntryError
from audit.merkle import leaf_hash
from audit.sealing import SealedPayload
from schemas.enums import S62Operation

WHEN = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
ANALYST = Actor(user_id="u-000123", force="05", roles=("analyst",), vetting="NPPV3")


def disclosure() -> AuditEntry:
    return AuditEntry(
        time=WHEN,
        node="20",
        kind=S62Operation.DISCLOSE,
        actor=ANALYST,
        purpose="investigation",
        case_ref="OP-2025-0001",
        query_fingerprint="ab" * 32,
        decision="redacted",
        policy_ids=("base.clearance", "agreement.nw-rocu"),
        policy_hash="cd" * 32,
        records=(RecordRef(force="20", record_id="r-1", version=3),),
        fields_withheld=("body.subjects.0.date_of_birth",),
        recipient_force="05",
        partner_request_id="req-05-0001",
        sealed=SealedPayload(key_id="2025-03", nonce=b"\x01" * 12, ciphertext=b"\x02" * 40),
    )


def test_encoding_is_rfc8785_canonical_json() -> None:
    data = encode_entry(disclosure())
    assert rfc8785.dumps(json.loads(data)) == data
    assert entry_leaf(disclosure()) == leaf_hash(data)


def test_encoding_omits_absent_fields_and_spells_time_once() -> None:
    value = json.loads(encode_entry(disclosure()))
    assert value["time"] == "2025-03-04T05:06:07.890123Z"
    assert "request_id" not in value and "receipts" not in value
    assert value["sealed"] == {
        "ciphertext": "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg==",
        "key_id": "2025-03",
        "nonce": "AQEBAQEBAQEBAQEB",
    }
    assert value["records"] == [{"force": "20", "record_id": "r-1", "version": 3}]


def test_same_instant_in_another_zone_encodes_identically() -> None:
    other = disclosure()
    shifted = AuditEntry(
        **{**_fields(other), "time": WHEN.astimezone(timezone(timedelta(hours=1)))}
    )
    assert encode_entry(shifted) == encode_entry(other)


def _fields(entry: AuditEntry) -> dict[str, object]:
    return {name: getattr(entry, name) for name in AuditEntry.__dataclass_fields__}


def test_decode_round_trips() -> None:
    entry = disclosure()
    assert decode_entry(encode_entry(entry)) == entry
    completed = AuditEntry(
        time=WHEN,
        node="05",
        kind=SecurityEvent.SEARCH_COMPLETED,
        actor=ANALYST,
        request_id="req-05-0001",
        receipts=({"force": "20", "index": 17, "checkpoint": "x\n1\nAAAA\n"},),
    )
    assert decode_entry(encode_entry(completed)) == completed


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d.replace(b'"node":"20"', b'"node": "20"'),  # not compact
        lambda d: d.replace(b'"v":1', b'"v":1,"extra":true'),  # unknown field
        lambda d: d.replace(b'"kind":"disclose"', b'"kind":"shred"'),  # unknown kind
        lambda d: d.replace(b"890123Z", b"89Z"),  # another spelling of the time
        lambda d: d.replace(b'"version":3', b'"version":-3'),
        lambda d: d[:-1],  # truncated JSON
    ],
)
def test_decode_refuses_anything_but_canonical_valid_entries(mangle: object) -> None:
    data = encode_entry(disclosure())
    assert callable(mangle)
    with pytest.raises(EntryError):
        decode_entry(mangle(data))


@pytest.mark.parametrize(
    ("kind", "missing"),
    [
        (S62Operation.CONSULT, "purpose"),
        (S62Operation.DISCLOSE, "recipient_force"),
        (S62Operation.COLLECT, "records"),
        (S62Operation.ERASE, "actor"),
        (SecurityEvent.POLICY_CHANGE, "policy_hash"),
        (SecurityEvent.SEARCH_COMPLETED, "request_id"),
    ],
)
def test_each_kind_requires_what_s62_needs(
    kind: S62Operation | SecurityEvent, missing: str
) -> None:
    fields = {**_fields(disclosure()), "kind": kind, "request_id": "req-1", missing: None}
    if missing in ("records",):
        fields[missing] = ()
    with pytest.raises(EntryError, match=missing):
        AuditEntry(**fields)  # type: ignore[arg-type]


def test_actor_must_identify_someone() -> None:
    with pytest.raises(EntryError, match="user_id or client_id"):
        AuditEntry(time=WHEN, node="05", kind=SecurityEvent.AUDIT_ACCESS, actor=Actor(force="05"))
    system = Actor(client_id="force05-rms", force="05")
    entry = AuditEntry(
        time=WHEN,
        node="05",
        kind=S62Operation.COLLECT,
        actor=system,
        records=(RecordRef("05", "r-9", 1),),
    )
    assert decode_entry(encode_entry(entry)).actor == system


def test_naive_times_and_bad_fingerprints_are_refused() -> None:
    with pytest.raises(EntryError, match="timezone"):
        AuditEntry(time=datetime(2025, 1, 1), node="05", kind=SecurityEvent.AUTH_FAILURE)
    with pytest.raises(EntryError, match="hex"):
        AuditEntry(time=WHEN, node="05", kind=SecurityEvent.AUTH_FAILURE, query_fingerprint="ABCD")


def test_security_event_with_only_the_basics_is_valid() -> None:
    entry = AuditEntry(time=WHEN, node="05", kind=SecurityEvent.AUTH_FAILURE)
    assert json.loads(encode_entry(entry)) == {
        "kind": "auth_failure",
        "node": "05",
        "time": "2025-03-04T05:06:07.890123Z",
        "v": 1,
    }
