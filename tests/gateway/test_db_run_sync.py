"""`Database.run_sync`: one unit of synchronous database work that never blocks the event loop,
on a SQLite file (a worker thread), in-memory SQLite and PostgreSQL (SQLAlchemy's run_sync)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gateway.db import Database


def _url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite-file":
        return f"sqlite+aiosqlite:///{(tmp_path / 'run-sync.db').as_posix()}"
    if kind == "sqlite-memory":
        return "sqlite+aiosqlite:///:memory:"
    url: str = request.getfixturevalue("pg_database")
    return url.replace("postgresql://", "postgresql+psycopg://")


@pytest.mark.parametrize("kind", ["sqlite-file", "sqlite-memory", "postgres"])
def test_work_reads_and_commits_what_it_wrote(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = Database(_url(kind, tmp_path, request))

    def write(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)"))
        conn.execute(text("INSERT INTO t (k, v) VALUES (:k, :v)"), [{"k": "a", "v": 1}])
        conn.commit()

    def uncommitted(conn: Connection) -> None:
        conn.execute(text("INSERT INTO t (k, v) VALUES ('b', 2)"))  # rolled back at the end

    def read(conn: Connection) -> list[tuple[str, int]]:
        return [(str(k), int(v)) for k, v in conn.execute(text("SELECT k, v FROM t ORDER BY k"))]

    async def run() -> list[tuple[str, int]]:
        try:
            await db.run_sync(write)
            await db.run_sync(uncommitted)
            return await db.run_sync(read)
        finally:
            await db.dispose()

    if kind == "sqlite-memory":
        # Each connection of an in-memory database is its own database; what matters is that the
        # work runs and sees its own writes.
        async def one_unit() -> list[tuple[str, int]]:
            try:
                return await db.run_sync(lambda conn: (write(conn), read(conn))[1])
            finally:
                await db.dispose()

        assert asyncio.run(one_unit()) == [("a", 1)]
        return
    assert asyncio.run(run()) == [("a", 1)]


def test_sqlite_work_runs_off_the_event_loop(tmp_path: Path) -> None:
    """The work waits for something only the event loop can do: on the loop's own thread it
    would never finish (the wait has a timeout, so a regression fails instead of hanging)."""
    db = Database(f"sqlite+aiosqlite:///{(tmp_path / 'off-loop.db').as_posix()}")
    started = threading.Event()
    released = threading.Event()
    threads: list[int] = []

    def work(conn: Connection) -> int:
        threads.append(threading.get_ident())
        started.set()
        assert released.wait(timeout=10), "the event loop did not run while the work waited"
        return int(conn.execute(text("SELECT 1")).scalar_one())

    async def release() -> None:
        # Released by the event loop only once the work is under way.
        assert await asyncio.to_thread(started.wait, 10)
        released.set()

    async def run() -> int:
        try:
            result, _ = await asyncio.gather(db.run_sync(work), release())
            return result
        finally:
            await db.dispose()

    assert asyncio.run(run()) == 1
    assert threads and threads[0] != threading.get_ident()
