"""Sealed payloads: AES-256-GCM bound to a context, and shredding that leaves the tree intact."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from audit.entry import Actor, AuditEntry, decode_entry, encode_entry, sealing_context
from audit.errors import PayloadShredded, SealingError
from audit.merkle import leaf_hash, root_from_leaves
from audit.sealing import KeyringSealer, SealedPayload
from schemas.enums import S62Operation

ANALYST = Actor(user_id="u-000123", force="05", vetting="NPPV3")


def keyring() -> KeyringSealer:
    return KeyringSealer({"2025-01": os.urandom(32), "2025-02": os.urandom(32)}, "2025-01")


def test_seal_and_unseal_round_trip() -> None:
    sealer = keyring()
    sealed = sealer.seal(b'{"terms":"07700 900123"}', b"ctx")
    assert sealed.key_id == "2025-01" and len(sealed.nonce) == 12
    assert b"07700" not in sealed.ciphertext
    assert sealer.unseal(sealed, b"ctx") == b'{"terms":"07700 900123"}'


def test_wrong_context_or_tampering_fails_to_open() -> None:
    sealer = keyring()
    sealed = sealer.seal(b"justification", b"ctx-a")
    with pytest.raises(SealingError):
        sealer.unseal(sealed, b"ctx-b")
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(SealingError):
        sealer.unseal(SealedPayload(sealed.key_id, sealed.nonce, flipped), b"ctx-a")


def test_shredded_key_makes_payload_unreadable_for_good() -> None:
    sealer = keyring()
    sealed = sealer.seal(b"terms", b"ctx")
    sealer.use_key("2025-02")
    sealer.shred("2025-01")
    with pytest.raises(PayloadShredded):
        sealer.unseal(sealed, b"ctx")
    with pytest.raises(SealingError, match="cannot be reinstated"):
        sealer.add_key("2025-01", os.urandom(32))
    assert sealer.key_ids == {"2025-02"}


def test_current_key_cannot_be_shredded_and_keys_must_be_32_bytes() -> None:
    sealer = keyring()
    with pytest.raises(SealingError):
        sealer.shred("2025-01")
    with pytest.raises(SealingError):
        KeyringSealer({"k": b"short"}, "k")


def test_shredding_keeps_every_entry_and_the_tree_intact() -> None:
    sealer = keyring()
    start = datetime(2025, 1, 30, tzinfo=UTC)
    stored: list[bytes] = []
    for day in range(4):
        if day == 2:
            sealer.use_key("2025-02")  # a new retention period begins
        request_id = f"req-{day}"
        context = sealing_context("05", request_id)
        entry = AuditEntry(
            time=start + timedelta(days=day),
            node="05",
            kind=S62Operation.CONSULT,
            actor=ANALYST,
            purpose="investigation",
            request_id=request_id,
            sealed=sealer.seal(json.dumps({"terms": f"term {day}"}).encode(), context),
        )
        stored.append(encode_entry(entry))
    root_before = root_from_leaves([leaf_hash(data) for data in stored])

    sealer.shred("2025-01")

    # The stored bytes are untouched, so the same leaves rebuild the same root...
    assert root_from_leaves([leaf_hash(data) for data in stored]) == root_before
    # ...while the first period's payloads are gone and the second period's still open.
    for day, data in enumerate(stored):
        entry = decode_entry(data)
        assert entry.sealed is not None
        context = sealing_context(entry.node, entry.request_id)
        if day < 2:
            with pytest.raises(PayloadShredded):
                sealer.unseal(entry.sealed, context)
        else:
            assert json.loads(sealer.unseal(entry.sealed, context)) == {"terms": f"term {day}"}


def test_payload_moved_to_another_entry_does_not_open() -> None:
    sealer = keyring()
    sealed = sealer.seal(b"terms", sealing_context("05", "req-1"))
    with pytest.raises(SealingError):
        sealer.unseal(sealed, sealing_context("05", "req-2"))
