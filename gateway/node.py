"""One force node's long-lived parts, built from settings: keys, database and audit log.

`init_node` creates what a new node needs on disk and in its database (`gateway init`);
`open_node` loads it at start-up and fails closed when anything is missing or unreadable.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from audit.log import AuditLog
from audit.store.base import AuditStore
from gateway.audit_api.keyring import AuditKeyFile
from gateway.audit_api.service import NodeAudit
from gateway.db import Database
from gateway.identity.signing import (
    NodeSigningKey,
    create_signing_key_file,
    load_signing_key_file,
)
from gateway.keys.blind_index import new_index_root
from gateway.keys.local import LocalKeyFileProvider, init_local_keyfile
from gateway.keys.provider import KekProvider
from gateway.migrations.runner import upgrade_to_head
from gateway.records.parallel import BulkWorkers, default_workers
from gateway.records.protection import NodeKeys
from gateway.records.tables import NodeSecretRow
from gateway.settings import Settings
from policies import EXAMPLE_POLICY_DIR, PolicyEngine, PolicyLoadError

log = structlog.get_logger(__name__)


class NodeStartupError(Exception):
    """The node cannot start safely; the message says what to fix."""


@dataclass
class Node:
    settings: Settings
    db: Database
    signing_key: NodeSigningKey
    keys: NodeKeys
    audit: NodeAudit
    policies: PolicyEngine
    # The federation manifest (trust registry); None when this node is not in a federation yet.
    manifest: Any = None
    # Watches the policy directory and reloads it (gateway/policy_reload.py), once started.
    policy_watcher: Any = None
    # Worker processes for bulk loads (gateway/records/parallel.py), started when first needed.
    bulk_workers: BulkWorkers = field(default_factory=lambda: BulkWorkers(0))

    async def close(self) -> None:
        self.bulk_workers.close()
        await asyncio.to_thread(self.audit.log.close)
        self.keys.kek.close()
        await self.db.dispose()


def open_kek_provider(settings: Settings) -> KekProvider:
    if settings.kek_provider == "pkcs11":
        from gateway.keys.hsm import Pkcs11KekProvider, Pkcs11Settings

        return Pkcs11KekProvider(
            Pkcs11Settings(
                token_label=settings.pkcs11_token_label,
                module_path=settings.pkcs11_module,
                pin_file=settings.pkcs11_pin_file,
            )
        )
    return LocalKeyFileProvider(settings.kek_path)


def _postgres_conninfo(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def open_audit_store(settings: Settings) -> AuditStore:
    url = settings.audit_database_url
    if url is None and make_url(settings.resolved_database_url).get_backend_name() == "postgresql":
        url = settings.resolved_database_url
    if url is not None and make_url(url).get_backend_name() == "postgresql":
        from audit.store.postgres import PostgresAuditStore

        return PostgresAuditStore(_postgres_conninfo(url))
    from audit.store.sqlite import SQLiteAuditStore

    path = Path(make_url(url).database or "") if url else settings.data_dir / "audit.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteAuditStore(path)


def _sync_url(settings: Settings) -> str:
    return settings.resolved_database_url


async def _store_index_root(db: Database, kek: KekProvider) -> None:
    from gateway.records.index_versions import first_root_needed, root_secret_name

    async with db.sessions() as session:
        if not await first_root_needed(session):
            return
        wrapped = kek.wrap(new_index_root())
        session.add(
            NodeSecretRow(
                name=root_secret_name(1),
                kek_version=wrapped.kek_version,
                wrapped=wrapped.blob,
                created_at=datetime.now(UTC),
            )
        )
        await session.commit()


def init_node(settings: Settings) -> list[str]:
    """Create keys and database for a new node; idempotent. Returns what it created."""
    created: list[str] = []
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not settings.signing_key_file.exists():
        create_signing_key_file(settings.signing_key_file)
        created.append("node signing key")
    if settings.kek_provider == "local" and not settings.kek_path.exists():
        init_local_keyfile(settings.kek_path)
        created.append("local key encryption key file")
    from gateway.identity.issuer import ensure_issuer_key

    if ensure_issuer_key(settings):
        created.append("built-in token issuer key")
    if not settings.audit_key_file.exists():
        AuditKeyFile(settings.audit_key_file).load_sealer()
        created.append("audit sealing key file")
    upgrade_to_head(settings.resolved_database_url)
    created.append("database migrated to head")

    async def _secrets() -> None:
        db = Database(settings.resolved_database_url)
        kek = open_kek_provider(settings)
        try:
            await _store_index_root(db, kek)
        finally:
            kek.close()
            await db.dispose()

    asyncio.run(_secrets())
    store = open_audit_store(settings)
    store.close()
    created.append("audit store ready")
    return created


def load_policies(settings: Settings) -> PolicyEngine:
    """Load and validate the policy set; an invalid set stops the node (fail closed)."""
    directory = settings.policy_dir or EXAMPLE_POLICY_DIR
    try:
        return PolicyEngine.load(directory)
    except PolicyLoadError as exc:
        raise NodeStartupError(f"the policy set in {directory} is invalid: {exc}") from exc


async def open_node(settings: Settings) -> Node:
    """Load everything the node needs; raises NodeStartupError rather than run half-configured."""
    policies = load_policies(settings)
    try:
        signing_key = load_signing_key_file(settings.signing_key_file)
    except Exception as exc:
        raise NodeStartupError(f"cannot load the node signing key: {exc}") from exc
    try:
        kek = open_kek_provider(settings)
    except Exception as exc:
        raise NodeStartupError(f"cannot open the key encryption key provider: {exc}") from exc
    db = Database(settings.resolved_database_url)
    from gateway.records.index_versions import IndexVersionError, load_node_keys

    try:
        async with db.sessions() as session:
            keys = await load_node_keys(session, kek, settings.force_code)
    except IndexVersionError as exc:
        kek.close()
        await db.dispose()
        raise NodeStartupError(str(exc)) from exc
    except SQLAlchemyError as exc:
        kek.close()
        await db.dispose()
        raise NodeStartupError(
            f"the node database is not initialised ({type(exc).__name__}); run `gateway init`"
        ) from exc
    except BaseException:
        kek.close()
        await db.dispose()
        raise
    store = await asyncio.to_thread(open_audit_store, settings)
    audit_log = AuditLog(
        store,
        origin=settings.log_origin,
        key_name=settings.log_origin,
        signing_key=signing_key.private_key,
        checkpoint_interval=settings.checkpoint_interval_seconds,
    )
    audit_log.start()
    audit = NodeAudit(
        audit_log=audit_log,
        key_file=AuditKeyFile(settings.audit_key_file),
        node=settings.force_code,
        sessions=db.sessions,
    )
    await audit.rebuild_index()
    return Node(
        settings=settings,
        db=db,
        signing_key=signing_key,
        keys=keys,
        audit=audit,
        policies=policies,
        manifest=_open_manifest(settings),
        bulk_workers=BulkWorkers(
            default_workers() if settings.bulk_workers is None else settings.bulk_workers
        ),
    )


def _open_manifest(settings: Settings) -> Any:
    try:
        from gateway.federation.manifest import open_manifest
    except ImportError:
        return None
    try:
        return open_manifest(settings)
    except Exception as exc:
        raise NodeStartupError(f"the federation manifest cannot be used: {exc}") from exc
