"""The tamper matrix: changes made directly in the audit database file, as a rogue database
administrator would (dropping the append-only triggers first), are each detected by
`gateway audit verify`, which names the first bad index where one exists."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit import merkle
from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.entry import Actor, AuditEntry, encode_entry
from audit.log import AuditLog
from gateway.cli import app
from gateway.identity.signing import load_signing_key_file
from gateway.node import init_node, open_audit_store
from gateway.node_offline import verifier_key
from schemas.enums import S62Operation
from tests.gateway.conftest import make_settings

ENTRIES = 2000
# Sizes at which the node signed checkpoints in this test: dense around the tamper points, so
# the node's own history pins the first bad index exactly; sparse elsewhere.
DENSE = [range(995, 1010), range(1495, 1505)]


def entry(i: int) -> bytes:
    return encode_entry(
        AuditEntry(
            time=datetime(2026, 11, 1, tzinfo=UTC),
            node="20",
            kind=S62Operation.CONSULT,
            actor=Actor(user_id=f"analyst-{i % 7}", force="20"),
            purpose="investigation",
            case_ref=f"OP-{i}",
            request_id=f"req-{i:08d}",
        )
    )


@pytest.fixture
def audited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    settings = make_settings(tmp_path / "node")
    init_node(settings)
    for name, value in {
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_FORCE_CODE": "20",
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_AUDITOR_TOKEN": settings.auditor_token.get_secret_value(),
    }.items():
        monkeypatch.setenv(name, value)
    key = load_signing_key_file(settings.signing_key_file)
    log = AuditLog(
        open_audit_store(settings),
        origin=settings.log_origin,
        key_name=settings.log_origin,
        signing_key=key.private_key,
    )
    futures = [log.submit(entry(i)) for i in range(ENTRIES)]
    for future in futures:
        future.result()
    store = log.store
    sizes = sorted({s for r in DENSE for s in r} | set(range(100, ENTRIES + 1, 100)))
    for size in sizes:
        root = merkle.root_at(size, store.get_node)
        note = sign_checkpoint(
            Checkpoint(settings.log_origin, size, root), settings.log_origin, key.private_key
        )
        store.save_checkpoint(size, note.to_text(), datetime.now(UTC))
    kept = store.latest_checkpoint()
    log.close()
    assert kept is not None and kept.size == ENTRIES
    kept_path = tmp_path / "kept.checkpoint"
    kept_path.write_text(kept.note)
    return settings, kept_path, key


def rogue_dba(settings) -> sqlite3.Connection:
    db = sqlite3.connect(settings.data_dir / "audit.db", isolation_level=None)
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        db.execute(f'DROP TRIGGER "{name}"')
    return db


def verify(tmp_path: Path, settings, checkpoint: Path) -> tuple[int, str]:
    runner = CliRunner()
    out = tmp_path / "export.ndjson"
    exported = runner.invoke(app, ["audit", "export", "--out", str(out), "--as-stored"])
    assert exported.exit_code == 0, exported.output
    result = runner.invoke(
        app,
        [
            "audit",
            "verify",
            str(out),
            "--key",
            verifier_key(settings),
            "--checkpoint",
            str(checkpoint),
        ],
    )
    return result.exit_code, " ".join(result.output.split())


def test_untouched_log_verifies(audited, tmp_path: Path) -> None:
    settings, kept, _ = audited
    code, output = verify(tmp_path, settings, kept)
    assert code == 0, output
    assert f"{ENTRIES} entries" in output


def test_one_byte_of_an_entry_changed(audited, tmp_path: Path) -> None:
    settings, kept, _ = audited
    db = rogue_dba(settings)
    (raw,) = db.execute("SELECT entry FROM audit_entries WHERE idx=1000").fetchone()
    forged = bytes(raw).replace(b"OP-1000", b"OP-1001")
    db.execute("UPDATE audit_entries SET entry=? WHERE idx=1000", (forged,))
    code, output = verify(tmp_path, settings, kept)
    assert code == 1 and "changed_entry at index 1000" in output


def test_a_row_deleted(audited, tmp_path: Path) -> None:
    settings, kept, _ = audited
    rogue_dba(settings).execute("DELETE FROM audit_entries WHERE idx=1500")
    code, output = verify(tmp_path, settings, kept)
    assert code == 1 and "missing_index at index 1500" in output


def test_two_rows_swapped(audited, tmp_path: Path) -> None:
    settings, kept, _ = audited
    db = rogue_dba(settings)
    a = db.execute("SELECT entry, leaf_hash FROM audit_entries WHERE idx=1000").fetchone()
    b = db.execute("SELECT entry, leaf_hash FROM audit_entries WHERE idx=1005").fetchone()
    db.execute("UPDATE audit_entries SET entry=?, leaf_hash=? WHERE idx=1000", b)
    db.execute("UPDATE audit_entries SET entry=?, leaf_hash=? WHERE idx=1005", a)
    code, output = verify(tmp_path, settings, kept)
    assert code == 1 and "at index 1000" in output


def test_the_log_truncated(audited, tmp_path: Path) -> None:
    settings, kept, _ = audited
    rogue_dba(settings).execute("DELETE FROM audit_entries WHERE idx >= 1800")
    code, output = verify(tmp_path, settings, kept)
    assert code == 1 and "truncated at index 1800" in output


def test_a_forged_row_inserted(audited, tmp_path: Path) -> None:
    settings, kept, _ = audited
    db = rogue_dba(settings)
    for idx in range(ENTRIES - 1, 1499, -1):
        db.execute("UPDATE audit_entries SET idx=idx+1 WHERE idx=?", (idx,))
    forged = entry(99999)
    db.execute(
        "INSERT INTO audit_entries (idx, entry, leaf_hash, appended_at) VALUES (?, ?, ?, ?)",
        (1500, forged, merkle.leaf_hash(forged), "2026-11-01T00:00:00.000000Z"),
    )
    code, output = verify(tmp_path, settings, kept)
    assert code == 1 and "at index 1500" in output


def test_a_checkpoint_signature_altered(audited, tmp_path: Path) -> None:
    settings, kept, _ = audited
    text = kept.read_text()
    body, signature = text.rsplit(" ", 1)
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    altered = tmp_path / "altered.checkpoint"
    altered.write_text(f"{body} {flipped}")
    code, output = verify(tmp_path, settings, altered)
    assert code == 1 and "bad_signature" in output


def test_a_checkpoint_for_a_different_tree_of_the_same_size(audited, tmp_path: Path) -> None:
    settings, _kept, key = audited
    other = [merkle.leaf_hash(entry(i if i != 700 else 70000)) for i in range(ENTRIES)]
    root = merkle.root_from_leaves(other)
    fork = sign_checkpoint(
        Checkpoint(settings.log_origin, ENTRIES, root), settings.log_origin, key.private_key
    )
    forked = tmp_path / "fork.checkpoint"
    forked.write_text(fork.to_text())
    code, output = verify(tmp_path, settings, forked)
    assert code == 1 and "root_mismatch" in output and "fork" in output
