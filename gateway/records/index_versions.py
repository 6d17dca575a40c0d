"""Blind-index key versions: which exist, which writers tag under, which searches use.

Rotating the index keys (part of `gateway keys rotate`) must not stop the node finding records,
so a new version goes through states kept in `index_versions`:

    building  -> written by every writer, filled for older records by the re-index, not searched
    active    -> searched (exactly one version at a time)
    previous  -> the version that was active before; still written, so a node process that has
                 not yet seen the switch keeps finding new records, until it is retired
    retired   -> its tags and its root secret are deleted

Each version has its own 32-byte root secret, stored wrapped by the KEK as the node secret
`blind-index-root-v<N>`, from which the per-kind HMAC keys are derived (gateway/keys/blind_index).

Every write transaction reads the versions after its own writes, holding what keeps the answer
true until it commits (on SQLite the database write lock it already holds; on PostgreSQL a share
lock on the rows it read), and adds or removes tags when the versions changed while it was
encrypting. Switching the active version takes the same rows for update and, in the same
transaction, checks that no record is left without tags of the new version, so no record
written during a re-index can be missed by searches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.keys.blind_index import IndexKeyring
from gateway.keys.provider import KekProvider, WrappedKey
from gateway.records.protection import IndexView, NodeKeys, index_terms, stored_index_terms
from gateway.records.tables import (
    DataKeyRow,
    IndexVersionRow,
    NodeSecretRow,
    RecordRow,
    SearchTermRow,
)

log = structlog.get_logger(__name__)

index_versions = IndexVersionRow.__table__  # type: ignore[attr-defined]
node_secrets = NodeSecretRow.__table__  # type: ignore[attr-defined]
records = RecordRow.__table__  # type: ignore[attr-defined]
data_keys = DataKeyRow.__table__  # type: ignore[attr-defined]
search_terms = SearchTermRow.__table__  # type: ignore[attr-defined]

BUILDING = "building"
ACTIVE = "active"
PREVIOUS = "previous"
RETIRED = "retired"
WRITABLE_STATES = (BUILDING, ACTIVE, PREVIOUS)


class IndexVersionError(Exception):
    """The index versions are not in a state that allows what was asked; the message says why."""


def root_secret_name(version: int) -> str:
    """Name of the node secret holding a version's index root (v1 is what `gateway init` made)."""
    return f"blind-index-root-v{version}"


@dataclass(frozen=True)
class VersionState:
    version: int
    state: str
    activated_at: datetime | None


async def read_versions(session: AsyncSession, *, lock: bool = False) -> list[VersionState]:
    """The versions that are not retired. `lock`: hold them until this transaction ends (a share
    lock on PostgreSQL; SQLite writers already hold the database write lock)."""
    query = (
        select(index_versions.c.version, index_versions.c.state, index_versions.c.activated_at)
        .where(index_versions.c.state != RETIRED)
        .order_by(index_versions.c.version)
    )
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    rows = (await session.execute(query)).all()
    return [VersionState(int(v), str(s), a) for v, s, a in rows]


async def _load_rings(
    session: AsyncSession, kek: KekProvider, force: str, versions: Sequence[int]
) -> dict[int, IndexKeyring]:
    names = {root_secret_name(v): v for v in versions}
    rows = (
        await session.execute(
            select(node_secrets.c.name, node_secrets.c.kek_version, node_secrets.c.wrapped).where(
                node_secrets.c.name.in_(list(names))
            )
        )
    ).all()
    found = {names[name]: WrappedKey(kek_version=kv, blob=blob) for name, kv, blob in rows}
    missing = sorted(set(versions) - set(found))
    if missing:
        raise IndexVersionError(
            f"the blind-index secret of version(s) {missing} is missing; run `gateway init`"
        )
    # Unwrapping may be a call into an HSM: keep it off the event loop.
    roots = await asyncio.to_thread(lambda: {v: kek.unwrap(w) for v, w in found.items()})
    return {v: IndexKeyring(root, force) for v, root in roots.items()}


def _active_and_writable(states: Sequence[VersionState]) -> tuple[int, tuple[int, ...]]:
    actives = [s.version for s in states if s.state == ACTIVE]
    if len(actives) != 1:
        raise IndexVersionError(f"expected exactly one active index version, found {actives}")
    return actives[0], tuple(s.version for s in states if s.state in WRITABLE_STATES)


async def view_from(
    session: AsyncSession, keys: NodeKeys, states: Sequence[VersionState]
) -> IndexView:
    """The view these states describe, reusing keyrings the node already holds."""
    active, writable = _active_and_writable(states)
    current = keys.view
    if current.active == active and current.writable == writable:
        return current
    rings = {v: current.rings[v] for v in writable if v in current.rings}
    new = [v for v in writable if v not in rings]
    if new:
        rings.update(await _load_rings(session, keys.kek, keys.force, new))
    view = IndexView(active=active, writable=writable, rings=rings)
    log.info("index_versions.changed", active=view.active, writable=list(view.writable))
    return view


async def refresh(session: AsyncSession, keys: NodeKeys, *, lock: bool = False) -> IndexView:
    """Read the versions and make them the node's view (returned)."""
    view = await view_from(session, keys, await read_versions(session, lock=lock))
    keys.view = view
    return view


class IndexWatcher:
    """Re-reads the index versions every `interval` seconds, so that searches switch to a newly
    activated version and writers stop writing a retired one, without a restart. (Writers also
    re-check within each write transaction; this is what keeps an idle or read-only node fresh.)"""

    def __init__(
        self, keys: NodeKeys, sessions: async_sessionmaker[AsyncSession], interval: float
    ) -> None:
        self.keys = keys
        self.sessions = sessions
        self.interval = max(interval, 0.5)

    async def check(self) -> IndexView:
        async with self.sessions() as session:
            return await refresh(session, self.keys)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving with the last view; say so
                log.warning("index_versions.refresh_failed", error=type(exc).__name__)


def start_index_watcher(
    keys: NodeKeys, sessions: async_sessionmaker[AsyncSession], interval: float
) -> asyncio.Task[None]:
    return asyncio.create_task(IndexWatcher(keys, sessions, interval).run(), name="index-watcher")


# --- what rotation does -----------------------------------------------------------------------


async def begin_version(
    sessions: async_sessionmaker[AsyncSession], kek: KekProvider, new_root: bytes
) -> tuple[int, bool]:
    """The version being built, creating it (with `new_root`, wrapped under the current KEK)
    when none is. Returns (version, created)."""
    async with sessions() as session:
        states = await read_versions(session)
        building = [s.version for s in states if s.state == BUILDING]
        if building:
            return building[0], False
        highest = (await session.execute(select(func.max(index_versions.c.version)))).scalar_one()
        version = int(highest or 0) + 1
        wrapped = await asyncio.to_thread(kek.wrap, new_root)
        now = datetime.now(UTC)
        await session.execute(
            insert(node_secrets).values(
                name=root_secret_name(version),
                kek_version=wrapped.kek_version,
                wrapped=wrapped.blob,
                created_at=now,
            )
        )
        await session.execute(
            insert(index_versions).values(version=version, state=BUILDING, created_at=now)
        )
        await session.commit()
        return version, True


async def count_behind(session: AsyncSession, version: int) -> int:
    """Records whose tags were not yet written for `version`."""
    return int(
        (
            await session.execute(
                select(func.count()).select_from(records).where(records.c.index_version < version)
            )
        ).scalar_one()
    )


async def activate(sessions: async_sessionmaker[AsyncSession], version: int) -> int:
    """Make a fully built version the one searches use. Returns 0 on success, or the number of
    records still without its tags (written meanwhile by a node that had not yet seen it), in
    which case nothing changed and the re-index should run again."""
    async with sessions() as session:
        now = datetime.now(UTC)
        # Taking the rows for update waits for writers that read them (PostgreSQL); on SQLite
        # the first UPDATE takes the database write lock. Either way, the count below then sees
        # every write that could have missed the new version.
        await session.execute(
            update(index_versions).where(index_versions.c.state == ACTIVE).values(state=PREVIOUS)
        )
        updated = await session.execute(
            update(index_versions)
            .where(index_versions.c.version == version, index_versions.c.state == BUILDING)
            .values(state=ACTIVE, activated_at=now)
        )
        if updated.rowcount != 1:  # type: ignore[attr-defined]
            await session.rollback()
            raise IndexVersionError(f"index version {version} is not being built")
        behind = await count_behind(session, version)
        if behind:
            await session.rollback()
            return behind
        await session.commit()
        return 0


async def retire_previous(
    sessions: async_sessionmaker[AsyncSession],
    *,
    min_age_seconds: float,
    batch: int = 1000,
) -> list[int]:
    """Retire every `previous` version: stop writing it, delete its tags and its root secret.

    Refused until the active version has been active for `min_age_seconds` (twice the nodes'
    refresh interval), so no node process is still searching with the old keys."""
    async with sessions() as session:
        states = await read_versions(session)
    previous = [s.version for s in states if s.state == PREVIOUS]
    if not previous:
        return []
    active = next(s for s in states if s.state == ACTIVE)
    if active.activated_at is not None:
        activated = active.activated_at
        if activated.tzinfo is None:
            activated = activated.replace(tzinfo=UTC)
        age = (datetime.now(UTC) - activated).total_seconds()
        if age < min_age_seconds:
            raise IndexVersionError(
                f"index version {active.version} became active {age:.0f} s ago; node processes "
                f"re-read index versions every few seconds, so retire the previous version(s) "
                f"{previous} after {min_age_seconds:.0f} s"
            )
    async with sessions() as session:
        await session.execute(
            update(index_versions)
            .where(index_versions.c.version.in_(previous))
            .values(state=RETIRED, retired_at=datetime.now(UTC))
        )
        await session.commit()
    # Delete tags record by record batch (the record_id index), not by one scan of the table.
    after = ""
    while True:
        async with sessions() as session:
            ids = (
                (
                    await session.execute(
                        select(records.c.record_id)
                        .where(records.c.record_id > after)
                        .order_by(records.c.record_id)
                        .limit(batch)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                break
            await session.execute(
                delete(search_terms).where(
                    search_terms.c.record_id.in_(ids),
                    search_terms.c.index_version.in_(previous),
                )
            )
            await session.commit()
            after = ids[-1]
    # Tags of records erased meanwhile went with them, and a writer that had not yet seen the
    # retirement removes what it wrote for a retired version before it commits (write_terms_for).
    async with sessions() as session:
        await session.execute(
            delete(node_secrets).where(
                node_secrets.c.name.in_([root_secret_name(v) for v in previous])
            )
        )
        await session.commit()
    return previous


# --- writers ----------------------------------------------------------------------------------


async def settle_writes(
    session: AsyncSession,
    keys: NodeKeys,
    used: IndexView,
    written: Sequence[dict[str, object]],
) -> IndexView:
    """Called by a write transaction after its writes, before it commits: re-reads the versions
    (held until commit) and, if they changed since the records were tagged under `used`, adds
    the tags of versions that appeared and removes those of versions that were retired."""
    view = await refresh(session, keys, lock=True)
    if view.writable == used.writable or not written:
        return view
    ids = [str(r["id"]) for r in written]
    gone = [v for v in used.writable if v not in view.writable]
    new = [v for v in view.writable if v not in used.writable]
    if gone:
        await session.execute(
            delete(search_terms).where(
                search_terms.c.record_id.in_(ids), search_terms.c.index_version.in_(gone)
            )
        )
    if new:

        def tag_all() -> list[dict[str, object]]:
            return [
                {"record_id": str(r["id"]), "term_kind": kind, "tag": tag, "index_version": v}
                for r in written
                for kind, tag, v in index_terms(dict(r), view, new)
            ]

        rows = await asyncio.to_thread(tag_all)
        if rows:
            await session.execute(insert(search_terms), rows)
    await session.execute(
        update(records).where(records.c.record_id.in_(ids)).values(index_version=view.newest)
    )
    log.info("index_versions.write_settled", added=new, removed=gone, records=len(ids))
    return view


# --- the re-index pass ------------------------------------------------------------------------


async def reindex(
    *,
    sessions: async_sessionmaker[AsyncSession],
    kek: KekProvider,
    force: str,
    version: int,
    ring: IndexKeyring,
    batch: int = 500,
    progress: Callable[[int, int], object] | None = None,
) -> int:
    """Write tags of `version` for every record that has none yet; returns how many it did.

    Each batch decrypts its records' indexed values (in a worker thread), then in one short
    transaction marks each record done only if it is still at the version that was read, so a
    record replaced meanwhile keeps what its writer wrote. Resumable: done records are skipped."""
    view = IndexView(active=version, writable=(version,), rings={version: ring})
    async with sessions() as session:
        total = await count_behind(session, version)
    done = 0
    after = ""
    while True:
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(
                        records.c.record_id,
                        records.c.version,
                        records.c.document,
                        records.c.data_key_id,
                        data_keys.c.kek_version,
                        data_keys.c.wrapped,
                    )
                    .join(data_keys, data_keys.c.record_id == records.c.record_id)
                    .where(records.c.index_version < version, records.c.record_id > after)
                    .order_by(records.c.record_id)
                    .limit(batch)
                )
            ).all()
        if not rows:
            break
        after = rows[-1].record_id

        def tag_batch(
            rows: Sequence[Any] = rows,
        ) -> list[tuple[str, int, list[tuple[str, bytes, int]]]]:
            out = []
            for row in rows:
                data_key = kek.unwrap(WrappedKey(kek_version=row.kek_version, blob=row.wrapped))
                terms = stored_index_terms(
                    row.document,
                    data_key=data_key,
                    key_id=row.data_key_id,
                    force=force,
                    view=view,
                    versions=(version,),
                )
                out.append((row.record_id, row.version, terms))
            return out

        tagged = await asyncio.to_thread(tag_batch)
        read_at = {record_id: record_version for record_id, record_version, _ in tagged}
        async with sessions() as session:
            # Mark each record done only if it is still at the version that was read (a record
            # replaced meanwhile keeps what its writer tagged), then see which ones were marked:
            # the rows updated here stay locked (or the database is) until this commits.
            await session.execute(
                update(records)
                .where(
                    records.c.record_id == bindparam("b_id"),
                    records.c.version == bindparam("b_version"),
                    records.c.index_version < version,
                )
                .values(index_version=version),
                [{"b_id": rid, "b_version": ver} for rid, ver in read_at.items()],
            )
            now_at = (
                await session.execute(
                    select(records.c.record_id, records.c.version).where(
                        records.c.record_id.in_(list(read_at)),
                        records.c.index_version >= version,
                    )
                )
            ).all()
            marked_set = {rid for rid, ver in now_at if read_at.get(rid) == ver}
            marked = [rid for rid in read_at if rid in marked_set]
            terms = [
                {"record_id": rid, "term_kind": k, "tag": t, "index_version": v}
                for rid, _, record_terms in tagged
                if rid in marked_set
                for k, t, v in record_terms
            ]
            if marked:
                await session.execute(
                    delete(search_terms).where(
                        search_terms.c.record_id.in_(marked),
                        search_terms.c.index_version == version,
                    )
                )
            if terms:
                await session.execute(insert(search_terms), terms)
            await session.commit()
        done += len(marked)
        if progress is not None:
            progress(done, max(total, done))
    return done


# --- start-up ---------------------------------------------------------------------------------


async def load_node_keys(session: AsyncSession, kek: KekProvider, force: str) -> NodeKeys:
    """This node's keys with every writable index version's keyring (fails when one is missing)."""
    active, writable = _active_and_writable(await read_versions(session))
    rings = await _load_rings(session, kek, force, writable)
    keys = NodeKeys(force=force, kek=kek, index=rings[active], index_version=active)
    keys.view = IndexView(active=active, writable=writable, rings=rings)
    return keys


async def first_root_needed(session: AsyncSession) -> bool:
    """True when version 1 is in use but its root secret was never made (a new node)."""
    state = (
        await session.execute(select(index_versions.c.state).where(index_versions.c.version == 1))
    ).scalar_one_or_none()
    if state is None or state == RETIRED:
        return False
    held = (
        await session.execute(
            select(func.count())
            .select_from(node_secrets)
            .where(node_secrets.c.name == root_secret_name(1))
        )
    ).scalar_one()
    return not held
