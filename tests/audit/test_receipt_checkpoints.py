"""Receipts that carry a signed checkpoint (`append_async(..., checkpoint=True)`): signed once per
group commit and stored in the batch's own transaction; canonical JSON's fast path."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import verify_checkpoint
from audit.entry import canonical_json
from audit.log import AuditLog, AuditUnavailable
from audit.merkle import verify_inclusion
from audit.store import AppendedLeaf, SQLiteAuditStore

ORIGIN = "audit.force-20.example/log"


class UnsigningStore:
    """A store whose `append` cannot sign (the protocol's older shape): the log signs apart."""

    def __init__(self, inner: SQLiteAuditStore) -> None:
        self.inner = inner
        self.appends = 0

    def append(self, entries: Sequence[bytes], appended_at: datetime) -> list[AppendedLeaf]:
        self.appends += 1
        return self.inner.append(entries, appended_at)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def _append_many(log: AuditLog, count: int) -> list:
    return list(
        await asyncio.gather(
            *(log.append_async(f"entry-{i}".encode(), checkpoint=True) for i in range(count))
        )
    )


@pytest.mark.parametrize("signing_store", [True, False])
def test_each_receipt_holds_a_signed_checkpoint_covering_its_entry(
    tmp_path: Path, signing_store: bool
) -> None:
    key = Ed25519PrivateKey.generate()
    sqlite = SQLiteAuditStore(tmp_path / "audit.db")
    store = sqlite if signing_store else UnsigningStore(sqlite)
    log = AuditLog(store, origin=ORIGIN, key_name="force-20", signing_key=key)  # type: ignore[arg-type]
    try:
        plain = asyncio.run(log.append_async(b"no checkpoint wanted"))
        assert plain.checkpoint is None
        receipts = asyncio.run(_append_many(log, 40))
        notes = {r.checkpoint for r in receipts}
        # One signature per group commit, not one per caller.
        assert len(notes) < len(receipts)
        for receipt in receipts:
            assert receipt.checkpoint is not None
            checkpoint = verify_checkpoint(receipt.checkpoint, ORIGIN, "force-20", key.public_key())
            assert checkpoint.size > receipt.index
            proof = log.inclusion_proof(receipt.index, checkpoint.size)
            verify_inclusion(
                receipt.leaf_hash, receipt.index, checkpoint.size, proof, checkpoint.root_hash
            )
        # The checkpoints are stored like any other: the latest covers every entry.
        latest = log.latest_checkpoint()
        assert latest is not None and latest.size == log.size()
    finally:
        log.close()


def test_a_batch_whose_checkpoint_cannot_be_stored_fails_closed(tmp_path: Path) -> None:
    store = SQLiteAuditStore(tmp_path / "audit.db")
    log = AuditLog(
        store, origin=ORIGIN, key_name="force-20", signing_key=Ed25519PrivateKey.generate()
    )
    original = store.append

    def refusing_sign(entries, appended_at, sign=None):  # type: ignore[no-untyped-def]
        def broken(size: int, root: bytes) -> str:
            raise RuntimeError("signing key unavailable")

        return original(entries, appended_at, sign=broken if sign is not None else None)

    store.append = refusing_sign  # type: ignore[method-assign]
    try:
        with pytest.raises(AuditUnavailable):
            asyncio.run(log.append_async(b"must not be answered", checkpoint=True))
        # Nothing of the failed batch was stored: entry and checkpoint share the transaction.
        assert log.size() == 0
        assert asyncio.run(log.append_async(b"plain")).index == 0
    finally:
        log.close()


def _random_value(rng: random.Random, depth: int = 0) -> object:
    alphabet = [chr(c) for c in range(0x80)] + [
        *("é", "—", "\u2028", "\u2029", "\U0001f600", "\ue000", "\uffff", "\ud800", "\udfff")
    ]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))

    roll = rng.random()
    if depth > 3 or roll < 0.3:
        return text()
    if roll < 0.4:
        return rng.choice([None, True, False])
    if roll < 0.55:
        return rng.choice([0, -1, 2**53 - 1, -(2**53 - 1), 2**53, rng.randint(-(10**9), 10**9)])
    if roll < 0.6:
        return rng.random() * 1000
    if roll < 0.8:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {text(): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def test_canonical_json_gives_the_bytes_rfc8785_gives() -> None:
    rng = random.Random(8785)
    for _ in range(5000):
        value = _random_value(rng)
        # A lone surrogate is refused by rfc8785 as a UnicodeEncodeError (in a key, when it
        # sorts by UTF-16), and must be refused the same way here.
        try:
            expected: bytes | type[Exception] = rfc8785.dumps(value)  # type: ignore[arg-type]
        except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:
            expected = type(exc)
        try:
            got: bytes | type[Exception] = canonical_json(value)
        except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:
            got = type(exc)
        assert got == expected, repr(value)
