"""Partner checkpoints from a search's receipts are remembered in one transaction, and a second
root for a size already seen is a fork, whichever search stored the first one. While another
writer holds SQLite's lock, the write waits for it (busy timeout) rather than failing.

Remembered checkpoints are forgotten after the retention period, except each force's largest
size; what is kept still catches a fork, and a forgotten size can be stored again."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, make_url
from structlog.testing import capture_logs

from audit.checkpoint import Checkpoint
from gateway.federation import witness
from gateway.federation.members import log_origin
from gateway.federation.runtime import federation_round
from gateway.federation.tables import (
    CosignatureRow,
    ForkEvidenceRow,
    SeenCheckpointRow,
    WitnessStateRow,
)
from gateway.federation.witness import forks, note_seen_checkpoints, prune_seen_checkpoints
from gateway.node import Node
from gateway.settings import Settings
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


# --- retention ---------------------------------------------------------------------------------

SEEN = SeenCheckpointRow.__table__  # type: ignore[attr-defined]


def _one_node(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest | None, **extra: Any
) -> Settings:
    overrides: dict[str, Any] = dict(extra)
    if backend == "postgres":
        assert request is not None
        url = request.getfixturevalue("pg_database")
        overrides["database_url"] = url.replace("postgresql://", "postgresql+psycopg://")
    settings = node_settings(tmp_path, "05", **overrides)
    write_manifest([settings], [member_for(settings)])
    return settings


async def _age(node: Node, now: datetime, days: int, *keys: tuple[str, int]) -> None:
    """Make stored checkpoints look first seen `days` before `now` (no waiting)."""

    def work(conn: Connection) -> None:
        for force, size in keys:
            conn.execute(
                update(SEEN)
                .where(SEEN.c.force == force, SEEN.c.size == size)
                .values(seen_at=now - timedelta(days=days))
            )
        conn.commit()

    await node.db.run_sync(work)


async def _store_and_age(node: Node, now: datetime) -> None:
    """Force 20: sizes 1-4 all seen 100 days ago (4 is its largest). Force 01: size 5 seen 100
    days ago, 6 ten days ago, 7 now. Force 30: one size, 9, seen 200 days ago."""
    seen = [_checkpoint("20", size, size) for size in (1, 2, 3, 4)]
    seen += [_checkpoint("01", size, size) for size in (5, 6, 7)]
    seen += [_checkpoint("30", 9, 9)]
    assert await note_seen_checkpoints(node, seen) == set()
    await _age(node, now, 100, ("20", 1), ("20", 2), ("20", 3), ("20", 4), ("01", 5))
    await _age(node, now, 10, ("01", 6))
    await _age(node, now, 200, ("30", 9))


KEPT = [("01", 6), ("01", 7), ("20", 4), ("30", 9)]

BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"])


async def _count(node: Node, table: Any) -> int:
    async with node.db.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


@BACKENDS
def test_old_checkpoints_go_except_each_forces_largest_and_other_tables_stay(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    settings = _one_node(tmp_path, backend, request)
    assert settings.seen_checkpoint_retention_days == 90

    async def run() -> None:
        async with running_federation([settings]) as fed:
            node = fed.nodes["05"].node
            now = datetime.now(UTC)
            await _store_and_age(node, now)
            # Long-past witness state, cosignature and fork evidence: none of it is pruned.
            long_ago = now - timedelta(days=1000)
            async with node.db.sessions() as session:
                session.add(
                    WitnessStateRow(
                        force="20", size=1, root_hash="00" * 32, note="w", updated_at=long_ago
                    )
                )
                session.add(
                    CosignatureRow(witness_force="20", size=1, note="c", collected_at=long_ago)
                )
                session.add(
                    ForkEvidenceRow(
                        force="20",
                        size=1,
                        note_a="a",
                        note_b="b",
                        reason="same size, different root",
                        detected_at=long_ago,
                    )
                )
                await session.commit()

            # In batches of 3 (then 1): each batch is its own transaction, the total the same.
            assert await prune_seen_checkpoints(node, now=now, batch=3) == 4
            assert [(f, s) for f, s, _ in _seen_rows(node)] == KEPT
            for table in (WitnessStateRow, CosignatureRow, ForkEvidenceRow):
                assert await _count(node, table) == 1, table
            # Nothing more to forget: a second prune deletes nothing.
            assert await prune_seen_checkpoints(node, now=now) == 0
            assert [(f, s) for f, s, _ in _seen_rows(node)] == KEPT

    anyio.run(run)


@BACKENDS
def test_the_cutoff_applies_to_the_times_searches_store(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """No aging by hand: rows as `note_seen_checkpoints` stores them, pruned as of a later day."""
    settings = _one_node(tmp_path, backend, request)

    async def run() -> None:
        async with running_federation([settings]) as fed:
            node = fed.nodes["05"].node
            before = datetime.now(UTC)
            seen = [_checkpoint("20", 1, 1), _checkpoint("20", 2, 2), _checkpoint("01", 3, 3)]
            assert await note_seen_checkpoints(node, seen) == set()
            after = datetime.now(UTC)
            just_within = before + timedelta(days=90) - timedelta(seconds=1)
            assert await prune_seen_checkpoints(node, now=just_within) == 0
            assert len(_seen_rows(node)) == 3
            just_past = after + timedelta(days=90, seconds=1)
            assert await prune_seen_checkpoints(node, now=just_past) == 1
            assert [(f, s) for f, s, _ in _seen_rows(node)] == [("01", 3), ("20", 2)]

    anyio.run(run)


@BACKENDS
def test_a_fork_at_a_kept_size_is_still_caught_after_a_prune(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    settings = _one_node(tmp_path, backend, request)

    async def run() -> None:
        async with running_federation([settings]) as fed:
            node = fed.nodes["05"].node
            now = datetime.now(UTC)
            await _store_and_age(node, now)
            assert await prune_seen_checkpoints(node, now=now, batch=2) == 4  # 2, 2, then 0
            # 20/4: old but force 20's largest; 01/6: within the retention period.
            forked = await note_seen_checkpoints(
                node, [_checkpoint("20", 4, 99), _checkpoint("01", 6, 99)]
            )
            assert forked == {"20", "01"}
            assert sorted((e.force, e.size) for e in await forks(node)) == [("01", 6), ("20", 4)]
            assert [(f, s) for f, s, _ in _seen_rows(node)] == KEPT

    anyio.run(run)


@BACKENDS
def test_a_forgotten_size_can_be_stored_again(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    settings = _one_node(tmp_path, backend, request)

    async def run() -> None:
        async with running_federation([settings]) as fed:
            node = fed.nodes["05"].node
            now = datetime.now(UTC)
            await _store_and_age(node, now)
            assert await prune_seen_checkpoints(node, now=now) == 4
            # The same checkpoint as before the prune is stored again (the in-process memory
            # of it went with the row), and so is another root for a forgotten size: the
            # same-size comparison no longer has anything to compare it with.
            again = [_checkpoint("20", 1, 1), _checkpoint("20", 2, 77)]
            assert await note_seen_checkpoints(node, again) == set()
            rows = {(f, s): root for f, s, root in _seen_rows(node)}
            assert rows[("20", 1)] == (bytes([1]) * 32).hex()
            assert rows[("20", 2)] == (bytes([77]) * 32).hex()
            assert await forks(node) == []
            # Stored again, the size is compared again.
            assert await note_seen_checkpoints(node, [_checkpoint("20", 2, 2)]) == {"20"}

    anyio.run(run)


def test_the_federation_round_prunes_with_the_nodes_setting_and_survives_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _one_node(tmp_path, "sqlite", None, seen_checkpoint_retention_days=30)

    async def run() -> None:
        async with running_federation([settings]) as fed:
            running = fed.nodes["05"]
            node = running.node
            now = datetime.now(UTC)
            seen = [_checkpoint("20", 1, 1), _checkpoint("20", 2, 2), _checkpoint("20", 3, 3)]
            assert await note_seen_checkpoints(node, seen) == set()
            await _age(node, now, 40, ("20", 1))  # past 30 days
            await _age(node, now, 20, ("20", 2))  # within them
            with capture_logs() as logs:
                await federation_round(running.app)
                await federation_round(running.app)  # nothing left to prune: not logged
            pruned = [e for e in logs if e["event"] == "federation.seen_checkpoints_pruned"]
            assert pruned == [
                {"event": "federation.seen_checkpoints_pruned", "log_level": "info", "count": 1}
            ]
            assert [(f, s) for f, s, _ in _seen_rows(node)] == [("20", 2), ("20", 3)]

            # A failing collection does not stop the prune; a failing prune does not escape.
            async def broken_collection(*_args: Any) -> None:
                raise RuntimeError("partner detail that must not be logged")

            monkeypatch.setattr(witness, "collect_cosignatures", broken_collection)
            await _age(node, now, 40, ("20", 2))
            with capture_logs() as logs:
                await federation_round(running.app)
            assert [(f, s) for f, s, _ in _seen_rows(node)] == [("20", 3)]
            events = [e["event"] for e in logs]
            assert events == [
                "federation.cosign_round_failed",
                "federation.seen_checkpoints_pruned",
            ]

            async def broken_prune(*_args: Any, **_kwargs: Any) -> int:
                raise RuntimeError("database detail that must not be logged")

            monkeypatch.setattr(witness, "prune_seen_checkpoints", broken_prune)
            with capture_logs() as logs:
                await federation_round(running.app)
            failed = [e for e in logs if e["event"] == "federation.seen_checkpoints_prune_failed"]
            assert failed == [
                {
                    "event": "federation.seen_checkpoints_prune_failed",
                    "log_level": "warning",
                    "error_type": "RuntimeError",
                }
            ]

    anyio.run(run)


def test_the_retention_setting_is_at_least_a_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(data_dir=tmp_path).seen_checkpoint_retention_days == 90
    monkeypatch.setenv("GATEWAY_SEEN_CHECKPOINT_RETENTION_DAYS", "30")
    assert Settings(data_dir=tmp_path).seen_checkpoint_retention_days == 30
    for bad in ("0", "-5"):
        monkeypatch.setenv("GATEWAY_SEEN_CHECKPOINT_RETENTION_DAYS", bad)
        with pytest.raises(ValidationError):
            Settings(data_dir=tmp_path)


def test_prune_refuses_a_retention_under_a_day_and_a_time_without_a_zone(tmp_path: Path) -> None:
    settings = _one_node(tmp_path, "sqlite", None)

    async def run() -> None:
        async with running_federation([settings]) as fed:
            node = fed.nodes["05"].node
            with pytest.raises(ValueError, match="at least 1"):
                await prune_seen_checkpoints(node, retention_days=0)
            with pytest.raises(ValueError, match="time zone"):
                await prune_seen_checkpoints(node, now=datetime.now())

    anyio.run(run)
