"""KEK rotation: a new key encryption key version, then every data key and node secret re-wrapped.

Runs beside a serving node: each batch re-wraps keys in its own short transaction, and a key is
readable under its old version until the row is updated, so reads never fail during rotation.
Resumable: rows already on the current version are skipped (`rewrap` leaves them as they are).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.keys.provider import KekProvider, WrappedKey, rewrap
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
