"""Partner checkpoints from a search's receipts are remembered in one transaction, and a second
root for a size already seen is a fork, whichever search stored the first one. While another
writer holds SQLite's lock, the write waits for it (busy timeout) rather than failing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import psycopg
import pytest
from sqlalchemy.engine import make_url

from audit.checkpoint import Checkpoint
from gateway.federation import witness
from gateway.federation.members import log_origin
from gateway.federation.witness import forks, note_seen_checkpoints
from gateway.node import Node
from tests.federation.conftest import member_for, node_settings, running_federation, write_manifest


def _checkpoint(force: str, size: int, fill: int) -> tuple[str, Checkpoint, str]:
    checkpoint = Checkpoint(log_origin(force), size, bytes([fill]) * 32)
    return force, checkpoint, f"note of {force} at {size} ({fill})"


_SEEN_ROWS = "SELECT force, size, root_hash FROM federation_seen_checkpoints ORDER BY force, size"


def _seen_rows(node: Node) -> list[tuple[str, int, str]]:
    url = make_url(node.db.url)
    if url.get_backend_name() == "postgresql":
        with psycopg.connect(url.set(drivername="postgresql").render_as_string(False)) as pg:
            return [tuple(row) for row in pg.execute(_SEEN_ROWS).fetchall()]
    assert url.database
    with sqlite3.connect(url.database) as conn:
        return conn.execute(_SEEN_ROWS).fetchall()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_checkpoints_are_stored_once_and_a_second_root_is_a_fork(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    overrides = {}
    if backend == "postgres":
        url = request.getfixturevalue("pg_database")
        overrides["database_url"] = url.replace("postgresql://", "postgresql+psycopg://")
    settings = node_settings(tmp_path, "05", **overrides)
    write_manifest([settings], [member_for(settings)])

    async def run() -> None:
        async with running_federation([settings]) as fed:
            node = fed.nodes["05"].node
            first = [_checkpoint("20", 7, 1), _checkpoint("01", 3, 2)]
            assert await note_seen_checkpoints(node, first) == set()
            assert await note_seen_checkpoints(node, first) == set()  # a repeat: no fork
            assert [(f, s) for f, s, _ in _seen_rows(node)] == [("01", 3), ("20", 7)]
            # Forget the in-process memory: the database alone must catch the fork.
            witness._SEEN.clear()
            forked = await note_seen_checkpoints(
                node, [_checkpoint("20", 7, 9), _checkpoint("01", 4, 2)]
            )
            assert forked == {"20"}
            evidence = await forks(node)
            assert [(e.force, e.size) for e in evidence] == [("20", 7)]
            assert [(f, s) for f, s, _ in _seen_rows(node)] == [("01", 3), ("01", 4), ("20", 7)]

    anyio.run(run)


def test_a_locked_database_is_waited_for(tmp_path: Path) -> None:
    settings = node_settings(tmp_path, "05")
    write_manifest([settings], [member_for(settings)])

    async def run() -> None:
        async with running_federation([settings]) as fed:
            node = fed.nodes["05"].node
            path = make_url(node.db.url).database
            assert path
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock for a moment

            async def release() -> None:
                await anyio.sleep(0.2)
                holder.execute("COMMIT")

            async with anyio.create_task_group() as group:
                group.start_soon(release)
                assert await note_seen_checkpoints(node, [_checkpoint("20", 5, 3)]) == set()
            holder.close()
            assert [(f, s) for f, s, _ in _seen_rows(node)] == [("20", 5)]

    anyio.run(run)
