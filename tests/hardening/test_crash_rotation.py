"""kill -9 `gateway keys rotate` at random points; rotation resumes and no record is lost.

A rotation creates a KEK version (an atomic key-file rewrite) and then re-wraps data keys in
short batches. Killed anywhere, every record must still decrypt under whichever version its
data key is wrapped with, and `gateway keys rotate --resume` must finish the job.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.db import Database
from gateway.identity.principals import SystemPrincipal
from gateway.node import open_node
from gateway.records import index_versions
from gateway.records.service import store_records
from gateway.settings import Settings
from schemas import parse_record
from schemas.examples import example_record
from tests.hardening.conftest import check_store, federated_node, node_env, verify_audit_log

TRIALS = 8
RECORDS = 6000
SEED = int(os.environ.get("GATEWAY_CRASH_SEED", "20261128"))


def load_records(settings: Settings) -> None:
    async def run() -> None:
        node = await open_node(settings)
        principal = SystemPrincipal("loader", settings.force_code, frozenset({"records:write"}))
        try:
            for start in range(0, RECORDS, 1000):
                records = []
                for n in range(start, start + 1000):
                    record = example_record("phone", id=f"rot-{n}", owner_force="20")
                    record["body"]["number"] = f"+447911{n:06d}"
                    records.append(parse_record(record).model_dump(mode="json"))
                async with node.db.sessions() as session:
                    await store_records(
                        session=session,
                        keys=node.keys,
                        audit=node.audit,
                        principal=principal,
                        records=records,
                        request_id=None,
                    )
                    await session.commit()
        finally:
            await node.close()

    asyncio.run(run())


def index_state(settings: Settings) -> tuple[dict[int, str], int]:
    """Index versions and their states, and how many records lack the active version's tags."""

    async def run() -> tuple[dict[int, str], int]:
        db = Database(settings.resolved_database_url)
        try:
            async with db.sessions() as session:
                states = {s.version: s.state for s in await index_versions.read_versions(session)}
                active = next(v for v, s in states.items() if s == "active")
                return states, await index_versions.count_behind(session, active)
        finally:
            await db.dispose()

    return asyncio.run(run())


def rotate(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "keys", "rotate", *args],
        env=node_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_rotation_killed_at_random_points_resumes_and_every_record_decrypts(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED + 1)
    settings = federated_node(tmp_path).settings
    load_records(settings)
    # When to kill is learnt from the trials themselves, so that kills land inside the re-wrap
    # on a fast machine and on a loaded one alike: a kill that found nothing re-wrapped moves
    # the earliest kill time up to it (and the latest beyond it); a rotation that got every data
    # key re-wrapped moves the latest down to it (and the earliest below it). Each kill is at a
    # random (seeded) point in between.
    earliest, latest = 0.3, 2.5
    mixed_states = trials = 0
    before = check_store(settings).kek_versions
    while trials < TRIALS or (mixed_states == 0 and trials < 3 * TRIALS):
        # Alternate: start a new rotation, or be killed while resuming the last one.
        resume = bool(trials % 2)
        delay = rng.uniform(earliest, latest)
        started = time.perf_counter()
        process = rotate(settings, *(["--resume"] if resume else []))
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        ran = min(delay, time.perf_counter() - started)
        trials += 1
        state = check_store(settings)
        assert len(state.versions) == RECORDS, "a record stopped decrypting after the crash"
        after = state.kek_versions
        mixed_states += len(after) > 1
        if not resume or len(before) > 1:  # this run had data keys to re-wrap
            if after == before and process.returncode == -signal.SIGKILL:  # too early
                earliest = ran
                latest = max(latest, 2 * earliest)
            elif len(after) == 1 and after != before:  # too late
                latest = ran
                earliest = min(earliest, latest / 2)
        before = after

    finished = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "rotate", "--resume"],
        env=node_env(settings),
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr.decode()
    state = check_store(settings)
    assert len(state.versions) == RECORDS
    assert len(state.kek_versions) == 1, state.kek_versions
    # The blind index a killed rotation was building is finished too: one active version, and
    # every record tagged under it.
    index_states, behind = index_state(settings)
    assert list(index_states.values()).count("active") == 1, index_states
    assert "building" not in index_states.values(), index_states
    assert behind == 0
    verify_audit_log(settings)
    print(
        f"rotation crash trials: {trials}, left half re-wrapped: {mixed_states}, "
        f"kill window learnt: {earliest:.2f}-{latest:.2f} s"
    )
    # Some kills must have landed mid re-wrap, or the test proved nothing.
    assert mixed_states >= 1
