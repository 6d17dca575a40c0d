"""The node's database: one async SQLAlchemy engine per app, sessions per request.

SQLite (aiosqlite, WAL) is the embedded default; PostgreSQL (psycopg 3, async) in production.
Services never commit: the request's session dependency commits on success, rolls back on error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


T = TypeVar("T")


def _json_kwargs() -> dict[str, Any]:
    # JSON columns hold whole record documents: orjson is several times faster. (A value that
    # is already JSON text can be bound as `orjson.Fragment`, which orjson writes verbatim:
    # bulk-load workers send encrypted documents that way, gateway/records/parallel.py.)
    return {
        "json_serializer": lambda value: orjson.dumps(value).decode(),
        "json_deserializer": orjson.loads,
    }


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {
            # A server connection can go stale (restart, failover): check it on checkout. A local
            # SQLite file cannot, and the check would cost a thread hop on every session.
            "pool_pre_ping": not self.is_sqlite,
            **_json_kwargs(),
        }
        if self.is_sqlite and parsed.database:
            # Readiness reports a directory that cannot be made; construction must not crash.
            with contextlib.suppress(OSError):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # A synchronous engine on the same SQLite file, for `run_sync` (made on first use).
        self._file = bool(self.is_sqlite and parsed.database and parsed.database != ":memory:")
        self._sync_engine: Engine | None = None

    async def run_sync(self, work: Callable[[Connection], T]) -> T:
        """Run `work` (a few statements on a synchronous connection) without blocking the loop.

        On a SQLite file, all of it runs in one worker thread over a synchronous connection:
        aiosqlite would hop to its thread and back for every cursor, execute, fetch and close
        of every statement, and on a busy node those hops cost more than an indexed lookup.
        On PostgreSQL (an asynchronous driver) it runs through SQLAlchemy's `run_sync`, each
        statement awaited on the event loop as usual. The connection is rolled back at the end:
        for reads, or for work that commits itself (`conn.commit()`)."""
        if not self._file:
            async with self.engine.connect() as conn:
                return await conn.run_sync(work)
        engine = self._sync_engine
        if engine is None:
            url = make_url(self.url).set(drivername="sqlite+pysqlite")
            engine = create_engine(url, **_json_kwargs())
            event.listen(engine, "connect", _sqlite_pragmas)
            self._sync_engine = engine

        def call() -> T:
            with engine.connect() as conn:
                return work(conn)

        return await asyncio.to_thread(call)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._sync_engine is not None:
            await asyncio.to_thread(self._sync_engine.dispose)
