"""Backup and restore of one SQLite node: `gateway backup` and `gateway restore`.

A backup has two halves that should be stored apart:

- data (`OUT/`): `node.db` and `audit.db`, copied with SQLite's online backup API so the node
  keeps serving, plus `backup.json` (SHA-256 of each file, the audit log size and its newest
  signed checkpoint at backup time);
- keys (`KEYS_OUT/`, default `OUT/keys/`): the key encryption key file, the node signing key,
  the audit sealing keys, the issuer and console keys, the manifest, with their own `keys.json`.

The data alone reveals nothing sensitive (fields are encrypted, the KEK is not in it); the keys
alone hold no records. Whoever holds both holds everything, hence the advice to keep them apart.
PostgreSQL nodes back up with pg_dump/pg_restore (docs/operator.md); only their keys are copied.

Restore refuses to overwrite an existing node, checks every checksum, then checks that the
restored audit log still carries the checkpoint signed before the backup (`verify_restored`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from audit.store.sqlite import SQLiteAuditStore
from audit.verify import VerifyReport, verify_export
from gateway.settings import Settings

DATA_MANIFEST = "backup.json"
KEYS_MANIFEST = "keys.json"
FORMAT = "police-gateway-backup/1"
_DATABASE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal")
_NOT_KEYS = frozenset({"node.log"})


class BackupError(Exception):
    """The backup or restore cannot go ahead; the message says why (no secret in it)."""


@dataclass
class BackupReport:
    out: Path
    keys_out: Path
    databases: list[str] = field(default_factory=list)
    key_files: list[str] = field(default_factory=list)
    audit_size: int = 0
    checkpoint_size: int | None = None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    return Path(parsed.database or "")


def _database_files(settings: Settings) -> dict[str, Path]:
    node_db = _sqlite_path(settings.resolved_database_url)
    if node_db is None:
        raise BackupError(
            "this node's database is PostgreSQL: back it up with pg_dump (docs/operator.md); "
            "`gateway backup --keys-only` copies its key files"
        )
    audit_url = settings.audit_database_url
    audit_db = _sqlite_path(audit_url) if audit_url else settings.data_dir / "audit.db"
    if audit_db is None:
        raise BackupError("the audit store is PostgreSQL: back it up with pg_dump")
    return {"node.db": node_db, "audit.db": audit_db}


def _key_files(settings: Settings) -> dict[str, Path]:
    """Every non-database file of the data directory, plus the KEK file if it lives elsewhere."""
    found: dict[str, Path] = {}
    if settings.data_dir.is_dir():
        for path in sorted(settings.data_dir.iterdir()):
            if (
                path.is_file()
                and not path.name.endswith(_DATABASE_SUFFIXES)
                and path.name not in _NOT_KEYS
            ):
                found[path.name] = path
    if settings.kek_provider == "local" and settings.kek_path.exists():
        found.setdefault(settings.kek_path.name, settings.kek_path)
    return found


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def _copy_private(source: Path, target: Path) -> None:
    # Created 0600 from the first byte: a key copy must never be readable by others, even briefly.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as src:
        shutil.copyfileobj(src, out)


def _online_copy(source: Path, target: Path) -> None:
    """SQLite's backup API: a consistent copy while the node keeps writing (pages changed during
    the copy make it restart, so the result is one transaction-consistent snapshot)."""
    if not source.exists():
        raise BackupError(f"no database at {source}; is GATEWAY_DATA_DIR right?")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)
    finally:
        dst.close()
        src.close()


def _audit_state(audit_db: Path) -> tuple[int, str | None, int | None]:
    store = SQLiteAuditStore(audit_db)
    try:
        latest = store.latest_checkpoint()
        return store.size(), latest.note if latest else None, latest.size if latest else None
    finally:
        store.close()


def _empty_or_absent(path: Path) -> None:
    if path.exists() and any(path.iterdir()):
        raise BackupError(f"{path} is not empty; a backup never overwrites files")


def backup_node(
    settings: Settings, *, out: Path, keys_out: Path | None = None, keys_only: bool = False
) -> BackupReport:
    """Copy this node's databases (online) and key files. See the module docstring."""
    keys_out = keys_out or out / "keys"
    report = BackupReport(out=out, keys_out=keys_out)
    _empty_or_absent(out)
    if keys_out != out / "keys":
        _empty_or_absent(keys_out)
    created = datetime.now(UTC).isoformat()
    if not keys_only:
        databases = _database_files(settings)
        _private_dir(out)
        checksums: dict[str, str] = {}
        for name, source in databases.items():
            _online_copy(source, out / name)
            checksums[name] = _sha256(out / name)
            report.databases.append(name)
        size, note, signed_size = _audit_state(out / "audit.db")
        report.audit_size, report.checkpoint_size = size, signed_size
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "force": settings.force_code,
            "created_at": created,
            "files": checksums,
            "audit_size": size,
            "audit_checkpoint": note,
        }
        (out / DATA_MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    _private_dir(keys_out)
    key_sums: dict[str, str] = {}
    for name, source in _key_files(settings).items():
        _copy_private(source, keys_out / name)
        key_sums[name] = _sha256(keys_out / name)
        report.key_files.append(name)
    keys_manifest = {
        "format": FORMAT,
        "force": settings.force_code,
        "created_at": created,
        "files": key_sums,
        "kek_file": settings.kek_path.name if settings.kek_provider == "local" else None,
    }
    (keys_out / KEYS_MANIFEST).write_text(json.dumps(keys_manifest, indent=2), encoding="utf-8")
    (keys_out / KEYS_MANIFEST).chmod(0o600)
    return report


def _read_manifest(directory: Path, name: str) -> dict[str, Any]:
    path = directory / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} is missing or not JSON") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupError(f"{path} is not a gateway backup manifest")
    return data


def _check_sums(directory: Path, files: dict[str, str]) -> None:
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise BackupError(f"{name} is missing from {directory}")
        if _sha256(path) != expected:
            raise BackupError(f"{name} in {directory} does not match its checksum")


def restore_node(settings: Settings, *, source: Path, keys_from: Path | None = None) -> list[str]:
    """Put a backup into `settings.data_dir` (which must hold no node yet). Returns the files
    restored. The KEK file goes to `settings.kek_path`."""
    keys_from = keys_from or source / "keys"
    data = _read_manifest(source, DATA_MANIFEST)
    keys = _read_manifest(keys_from, KEYS_MANIFEST)
    if data["force"] != settings.force_code or keys["force"] != settings.force_code:
        raise BackupError(
            f"the backup is of force {data['force']} (keys: {keys['force']}), "
            f"not of force {settings.force_code}"
        )
    databases = _database_files(settings)
    for target in databases.values():
        if target.exists():
            raise BackupError(f"{target} exists; restore only into a new data directory")
    _check_sums(source, data["files"])
    _check_sums(keys_from, keys["files"])
    _private_dir(settings.data_dir)
    restored: list[str] = []
    for name, target in databases.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_private(source / name, target)
        restored.append(name)
    kek_name = keys.get("kek_file")
    for name in keys["files"]:
        target = settings.kek_path if name == kek_name else settings.data_dir / name
        if target.exists():
            raise BackupError(f"{target} exists; a restore never overwrites a key")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _copy_private(keys_from / name, target)
        restored.append(name)
    return restored


def verify_restored(settings: Settings, *, source: Path) -> VerifyReport:
    """Export the restored audit log and verify it against its own newest checkpoint and against
    the checkpoint recorded at backup time: the restored log is intact and extends it."""
    from gateway.identity.signing import load_signing_key_file
    from gateway.node_offline import export_local

    data = _read_manifest(source, DATA_MANIFEST)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.ndjson"
        note, _rows, _vkey = export_local(out, settings=settings)
        key = load_signing_key_file(settings.signing_key_file)
        with out.open("rb") as lines:
            return verify_export(
                lines,
                checkpoint_text=note,
                origin=settings.log_origin,
                key_name=settings.log_origin,
                public_key=key.public_key,
                old_checkpoint_text=data.get("audit_checkpoint"),
            )


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:
        _console().print(f"[red]invalid settings:[/] {exc}")
        raise typer.Exit(2) from exc


def backup_command(
    out: Annotated[Path, typer.Option("--out", help="New or empty directory for the data")],
    keys_out: Annotated[
        Path | None,
        typer.Option(help="Directory for the key files (default OUT/keys): store it elsewhere"),
    ] = None,
    keys_only: Annotated[
        bool, typer.Option("--keys-only", help="Copy only the keys (PostgreSQL: use pg_dump)")
    ] = False,
) -> None:
    """Back up this node while it runs: databases (SQLite online backup) and key files."""
    console = _console()
    try:
        report = backup_node(_settings(), out=out, keys_out=keys_out, keys_only=keys_only)
    except BackupError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    if report.databases:
        console.print(f"data:  {', '.join(report.databases)} -> {report.out}")
        console.print(
            f"audit log: {report.audit_size} entries, newest signed checkpoint covers "
            f"{report.checkpoint_size if report.checkpoint_size is not None else 0}"
        )
    console.print(f"keys:  {', '.join(report.key_files)} -> {report.keys_out}")
    console.print(
        "[yellow]Store the keys apart from the data (different media, different custodians): "
        "whoever holds both can read every record.[/]"
    )


def restore_command(
    source: Annotated[Path, typer.Option("--from", help="The backup's data directory")],
    keys_from: Annotated[
        Path | None, typer.Option(help="The backup's key directory (default FROM/keys)")
    ] = None,
) -> None:
    """Restore a backup into GATEWAY_DATA_DIR (a new node), then verify its audit log."""
    console = _console()
    settings = _settings()
    try:
        restored = restore_node(settings, source=source, keys_from=keys_from)
    except BackupError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    console.print(f"restored into {settings.data_dir}: {', '.join(restored)}")
    report = verify_restored(settings, source=source)
    if not report.ok:
        console.print(f"[red]the restored audit log does not verify: {report.problem}[/]")
        raise typer.Exit(1)
    console.print(
        f"[green]audit log verified[/]: {report.entries} entries, extends the checkpoint "
        "signed before the backup"
    )
    # The restored key files must keep their private modes (the KEK provider refuses others).
    for name in restored:
        path = settings.data_dir / name
        if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            console.print(f"[yellow]{path} is readable by others; chmod 600 it[/]")
