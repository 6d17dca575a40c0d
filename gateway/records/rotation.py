"""Key rotation: a new key encryption key version, then every data key and node secret re-wrapped;
then new blind-index keys and a re-index of every record under them (`rotate_index`).

Runs beside a serving node: each batch re-wraps keys in its own short transaction, and a key is
readable under its old version until the row is updated, so reads never fail during rotation.
Resumable: rows already on the current version are skipped (`rewrap` leaves them as they are).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.keys.blind_index import IndexKeyring, new_index_root
from gateway.keys.provider import KekProvider, WrappedKey, rewrap
from gateway.records import index_versions
from gateway.records.tables import DataKeyRow, NodeSecretRow

data_keys = DataKeyRow.__table__  # type: ignore[attr-defined]
node_secrets = NodeSecretRow.__table__  # type: ignore[attr-defined]


@dataclass
class RotationSummary:
    new_version: str
    data_keys: int
    secrets: int
    remaining_on_old: int


async def count_not_on(session: AsyncSession, version: str) -> int:
    result = await session.execute(
        select(func.count()).select_from(data_keys).where(data_keys.c.kek_version != version)
    )
    return int(result.scalar_one())


async def rotate_kek(
    *,
    sessions: async_sessionmaker[AsyncSession],
    kek: KekProvider,
    create_version: bool = True,
    batch: int = 500,
    progress: Callable[[int, int], object] | None = None,
) -> RotationSummary:
    version = kek.create_version() if create_version else kek.current_version
    async with sessions() as session:
        total = await count_not_on(session, version)
    done = 0
    while True:
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(data_keys.c.key_id, data_keys.c.kek_version, data_keys.c.wrapped)
                    .where(data_keys.c.kek_version != version)
                    .limit(batch)
                )
            ).all()
            if not rows:
                break
            updates = []
            for key_id, old_version, blob in rows:
                fresh = rewrap(WrappedKey(kek_version=old_version, blob=blob), kek)
                updates.append((key_id, old_version, fresh))
            for key_id, old_version, fresh in updates:
                # Guard on the old version: a concurrent writer's row is left for the next pass.
                await session.execute(
                    update(data_keys)
                    .where(data_keys.c.key_id == key_id, data_keys.c.kek_version == old_version)
                    .values(kek_version=fresh.kek_version, wrapped=fresh.blob)
                )
            await session.commit()
        done += len(rows)
        if progress is not None:
            progress(done, max(total, done))
    secrets = 0
    async with sessions() as session:
        for name, old_version, blob in (
            await session.execute(
                select(node_secrets.c.name, node_secrets.c.kek_version, node_secrets.c.wrapped)
            )
        ).all():
            if old_version == version:
                continue
            fresh = rewrap(WrappedKey(kek_version=old_version, blob=blob), kek)
            await session.execute(
                update(node_secrets)
                .where(node_secrets.c.name == name)
                .values(kek_version=fresh.kek_version, wrapped=fresh.blob)
            )
            secrets += 1
        await session.commit()
        remaining = await count_not_on(session, version)
    return RotationSummary(
        new_version=version, data_keys=done, secrets=secrets, remaining_on_old=remaining
    )


async def retire_kek_version(
    *, sessions: async_sessionmaker[AsyncSession], kek: KekProvider, version: str
) -> None:
    """Destroy an old KEK version, refusing while any stored key still depends on it."""
    async with sessions() as session:
        in_use = (
            await session.execute(
                select(func.count())
                .select_from(data_keys)
                .where(data_keys.c.kek_version == version)
            )
        ).scalar_one()
        secrets_in_use = (
            await session.execute(
                select(func.count())
                .select_from(node_secrets)
                .where(node_secrets.c.kek_version == version)
            )
        ).scalar_one()
    if in_use or secrets_in_use:
        raise ValueError(
            f"{in_use} data key(s) and {secrets_in_use} secret(s) are still wrapped under "
            f"{version}; run `gateway keys rotate --resume` first"
        )
    kek.retire_version(version)


@dataclass
class IndexRotationSummary:
    version: int
    created: bool
    reindexed: int
    passes: int
    activated: bool
    behind: int  # records still without the new version's tags when not activated


async def rotate_index(
    *,
    sessions: async_sessionmaker[AsyncSession],
    kek: KekProvider,
    force: str,
    batch: int = 500,
    max_passes: int = 5,
    resume: bool = False,
    progress: Callable[[int, int], object] | None = None,
) -> IndexRotationSummary | None:
    """New blind-index keys: a new version (or the one a stopped rotation left), re-index every
    record under it while the node serves, then switch searches to it. With `resume`, only a
    version a stopped rotation left is finished (None when there is none).

    A pass re-indexes what it finds; records written meanwhile by a node process that had not yet
    seen the new version are caught by the switch's check and re-indexed by another pass.
    Refused while the version replaced by the last rotation is still kept (not yet retired), so
    writers never tag under more than three versions."""
    async with sessions() as session:
        states = await index_versions.read_versions(session)
    if not any(s.state == index_versions.BUILDING for s in states):
        if resume:
            return None
        kept = [s.version for s in states if s.state == index_versions.PREVIOUS]
        if kept:
            raise index_versions.IndexVersionError(
                f"the blind index of the last rotation (version {kept[0]}) is still kept; retire "
                "it first with `gateway keys retire <old KEK version>`, then rotate again"
            )
    version, created = await index_versions.begin_version(sessions, kek, new_index_root())
    async with sessions() as session:
        (row,) = (
            await session.execute(
                select(node_secrets.c.kek_version, node_secrets.c.wrapped).where(
                    node_secrets.c.name == index_versions.root_secret_name(version)
                )
            )
        ).all()
    ring = IndexKeyring(kek.unwrap(WrappedKey(kek_version=row[0], blob=row[1])), force)
    done = 0
    behind = 0
    for number in range(1, max_passes + 1):
        done += await index_versions.reindex(
            sessions=sessions,
            kek=kek,
            force=force,
            version=version,
            ring=ring,
            batch=batch,
            progress=progress,
        )
        behind = await index_versions.activate(sessions, version)
        if behind == 0:
            return IndexRotationSummary(version, created, done, number, True, 0)
    return IndexRotationSummary(version, created, done, max_passes, False, behind)
