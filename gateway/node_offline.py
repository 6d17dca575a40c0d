"""Operator and auditor work on a node's files while it may be stopped: audit log exports.

Two kinds of export:
- signed (default): sign a checkpoint now and export exactly the tree it covers;
- forensic (`as_stored=True`): sign nothing; write every row as the database holds it, with its
  stored leaf hash, plus every checkpoint the node signed over time (`OUT.checkpoints`). That is
  what an auditor verifies against a checkpoint kept from before a suspected change.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

from audit.checkpoint import VerifierKey
from audit.entry import SecurityEvent
from audit.log import AuditLog
from audit.store.base import AuditStore
from audit.verify import VerifyReport, export_line, verify_export
from gateway.identity.signing import load_signing_key_file
from gateway.node import open_audit_store
from gateway.settings import Settings

CHUNK = 5000


def verifier_key(settings: Settings) -> str:
    key = load_signing_key_file(settings.signing_key_file)
    return VerifierKey(settings.log_origin, 0x01, key.public_key).to_text()


def export_local(
    out: Path,
    progress: Callable[[int, int], object] | None = None,
    *,
    settings: Settings | None = None,
    as_stored: bool = False,
) -> tuple[str, int, str]:
    """Export this node's log. Returns (checkpoint note text, rows written, verifier key)."""
    settings = settings or Settings()
    if as_stored:
        store = open_audit_store(settings)
        try:
            return _export_as_stored(store, out, progress), *_rows_and_key(out, settings)
        finally:
            store.close()
    key = load_signing_key_file(settings.signing_key_file)
    log = AuditLog(
        open_audit_store(settings),
        origin=settings.log_origin,
        key_name=settings.log_origin,
        signing_key=key.private_key,
    )
    try:
        note = log.checkpoint()
        size = int(note.to_text().split("\n")[1])
        with out.open("wb") as fh:
            log.export(fh, progress, end=size)
    finally:
        log.close()
    return note.to_text(), size, verifier_key(settings)


def _rows_and_key(out: Path, settings: Settings) -> tuple[int, str]:
    with out.open("rb") as fh:
        rows = sum(1 for _ in fh)
    return rows, verifier_key(settings)


def _export_as_stored(
    store: AuditStore, out: Path, progress: Callable[[int, int], object] | None
) -> str:
    stored = store.checkpoints()
    history = out.with_name(out.name + ".checkpoints")
    # One JSON object per line: signed notes contain blank lines of their own.
    history.write_text(
        "".join(json.dumps({"size": c.size, "note": c.note}) + "\n" for c in stored),
        encoding="utf-8",
    )
    # Read past the stored size too: rows a rogue writer added beyond it are evidence.
    end = max(store.size(), max((c.size for c in stored), default=0)) + CHUNK
    with out.open("wb") as fh:
        start = 0
        while start < end:
            rows = store.read_rows(start, start + CHUNK)
            for index, entry, leaf in rows:
                fh.write(export_line(index, entry, leaf))
            if progress is not None:
                progress(min(start + CHUNK, end), end)
            start += CHUNK
    latest = stored[-1].note if stored else ""
    return latest


def record_offline_event(
    kind: SecurityEvent,
    *,
    settings: Settings | None = None,
    purpose: str,
    decision: str | None = None,
) -> int:
    """Append a security event from a command run beside the node (e.g. key rotation).

    The entry goes through the same store and signing key as the node's own entries (the store
    serialises writers), so an operator's key work is in the same tamper-evident log."""
    from datetime import UTC, datetime

    from audit.entry import Actor, AuditEntry, encode_entry

    settings = settings or Settings()
    key = load_signing_key_file(settings.signing_key_file)
    log = AuditLog(
        open_audit_store(settings),
        origin=settings.log_origin,
        key_name=settings.log_origin,
        signing_key=key.private_key,
    )
    try:
        receipt = log.append(
            encode_entry(
                AuditEntry(
                    time=datetime.now(UTC),
                    node=settings.force_code,
                    kind=kind,
                    actor=Actor(client_id="operator-cli", force=settings.force_code),
                    purpose=purpose,
                    decision=decision,
                )
            )
        )
    finally:
        log.close()
    return receipt.index


def verify_local_log(settings: Settings) -> VerifyReport:
    """Verify a stopped node's audit log from its own store.

    The tree is recomputed from the stored entries and checked against a freshly signed head,
    which must also extend the last checkpoint the node itself signed: an entry acknowledged
    before a crash cannot have been lost or rewritten since."""
    store = open_audit_store(settings)
    key = load_signing_key_file(settings.signing_key_file)
    latest = store.latest_checkpoint()
    log = AuditLog(
        store,
        origin=settings.log_origin,
        key_name=settings.log_origin,
        signing_key=key.private_key,
        checkpoint_interval=3600,
    )
    try:
        exported = io.BytesIO()
        log.export(exported)
        note = log.checkpoint()
        return verify_export(
            exported.getvalue().splitlines(keepends=True),
            checkpoint_text=note.to_text(),
            origin=settings.log_origin,
            key_name=settings.log_origin,
            public_key=key.private_key.public_key(),
            old_checkpoint_text=latest.note if latest is not None else None,
        )
    finally:
        log.close()
