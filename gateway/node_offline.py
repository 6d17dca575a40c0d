"""Operator work on a node's files while it may be stopped: export of the audit log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from audit.checkpoint import VerifierKey
from audit.log import AuditLog
from gateway.identity.signing import load_signing_key_file
from gateway.node import open_audit_store
from gateway.settings import Settings


def export_local(
    out: Path, progress: Callable[[int, int], object] | None = None
) -> tuple[str, int, str]:
    """Sign a checkpoint now and export up to it. Returns (note text, lines, verifier key)."""
    settings = Settings()
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
    vkey = VerifierKey(settings.log_origin, 0x01, key.public_key).to_text()
    return note.to_text(), size, vkey
