"""Durable audit appends per second with group commit, on SQLite and PostgreSQL.

Figures (all entries ~300 bytes, every append durable before it returns):
- ``*_group_commit``: 16 threads each calling ``AuditLog.append`` in a loop (a sync thread pool).
- ``*_asyncio_group_commit``: 256 asyncio tasks on one loop awaiting ``append_async`` (the
  gateway's own shape).
- ``sqlite_plain_batched_inserts``: the baseline, the same bytes inserted into a plain SQLite table
  in exactly the batches the log committed, same durability, no tree and no threads.
- ``sqlite_store_direct_same_batches``: ``SQLiteAuditStore.append`` on those batches from one
  thread: the tree's own cost, without the thread hand-off.

Run: ``.venv/bin/python bench/audit_store_bench.py [--quick]``. PostgreSQL is measured when
``GATEWAY_TEST_PG`` (or the default local server) is reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.log import AuditLog
from audit.store import AuditStore, PostgresAuditStore, SQLiteAuditStore

PG_ADMIN_URL = os.environ.get("GATEWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ENTRY_SIZE = 300
ORIGIN = "bench.audit.example/log"


def _entry(thread: int, n: int) -> bytes:
    head = f'{{"op":"disclose","thread":{thread},"n":{n},"pad":"'.encode()
    return head + b"x" * (ENTRY_SIZE - len(head) - 2) + b'"}'


def _group_commit_rate(
    store: AuditStore, threads: int, per_thread: int
) -> tuple[dict[str, Any], list[int]]:
    log = AuditLog(store, origin=ORIGIN, key_name=ORIGIN, signing_key=Ed25519PrivateKey.generate())
    batches: list[int] = []
    inner_append = store.append

    def counting_append(entries: Any, appended_at: Any) -> Any:
        batches.append(len(entries))
        return inner_append(entries, appended_at)

    store.append = counting_append  # type: ignore[method-assign]
    barrier = threading.Barrier(threads + 1)

    def worker(thread: int) -> None:
        entries = [_entry(thread, n) for n in range(per_thread)]
        barrier.wait()
        for entry in entries:
            log.append(entry)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    total = threads * per_thread
    assert log.size() == total
    log.close()
    figures = {
        "entries": total,
        "threads": threads,
        "seconds": round(elapsed, 3),
        "appends_per_s": round(total / elapsed),
        "transactions": len(batches),
        "mean_batch": round(sum(batches) / len(batches), 1),
    }
    return figures, batches


def _asyncio_rate(store: AuditStore, tasks: int, per_task: int) -> dict[str, Any]:
    """The gateway's own shape: one event loop, many requests awaiting ``append_async``."""
    log = AuditLog(store, origin=ORIGIN, key_name=ORIGIN, signing_key=Ed25519PrivateKey.generate())

    async def request(task: int) -> None:
        for n in range(per_task):
            await log.append_async(_entry(task, n))

    async def run_all() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(request(t) for t in range(tasks)))
        return time.perf_counter() - started

    elapsed = asyncio.run(run_all())
    total = tasks * per_task
    assert log.size() == total
    log.close()
    return {
        "entries": total,
        "tasks": tasks,
        "seconds": round(elapsed, 3),
        "appends_per_s": round(total / elapsed),
    }


def _plain_sqlite_rate(path: Path, batch_sizes: list[int], threads: int) -> dict[str, Any]:
    """Baseline: the same bytes, same batches, same durability, no tree and no hand-off."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE plain (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL)")
    per_thread = sum(batch_sizes) // threads + 1
    pool = [_entry(t, n) for t in range(threads) for n in range(per_thread)]
    started = time.perf_counter()
    position = 0
    for size in batch_sizes:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO plain (idx, entry) VALUES (?, ?)",
            [(position + i, pool[position + i]) for i in range(size)],
        )
        conn.execute("COMMIT")
        position += size
    elapsed = time.perf_counter() - started
    conn.close()
    return {
        "entries": position,
        "seconds": round(elapsed, 3),
        "inserts_per_s": round(position / elapsed),
        "transactions": len(batch_sizes),
    }


def _store_direct_rate(path: Path, batch_sizes: list[int], threads: int) -> dict[str, Any]:
    """The store alone, same batches, one thread: the tree's cost without the thread hand-off."""
    store = SQLiteAuditStore(path)
    per_thread = sum(batch_sizes) // threads + 1
    pool = [_entry(t, n) for t in range(threads) for n in range(per_thread)]
    now = datetime.now(UTC)
    started = time.perf_counter()
    position = 0
    for size in batch_sizes:
        store.append(pool[position : position + size], now)
        position += size
    elapsed = time.perf_counter() - started
    store.close()
    return {
        "entries": position,
        "seconds": round(elapsed, 3),
        "appends_per_s": round(position / elapsed),
    }


def _with_postgres(run: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            name = f"gw_bench_{secrets.token_hex(4)}"
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        return {"skipped": f"PostgreSQL not reachable: {exc}"}
    try:
        return run(f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(quick: bool) -> dict[str, Any]:
    threads = 16
    per_thread = 500 if quick else 3000
    results: dict[str, Any] = {"entry_bytes": ENTRY_SIZE, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteAuditStore(Path(tmp) / "audit.db")
        results["sqlite_group_commit"], batches = _group_commit_rate(store, threads, per_thread)
        # The baseline commits exactly the batch sizes the log produced.
        results["sqlite_plain_batched_inserts"] = _plain_sqlite_rate(
            Path(tmp) / "plain.db", batches, threads
        )
        results["sqlite_store_direct_same_batches"] = _store_direct_rate(
            Path(tmp) / "direct.db", batches, threads
        )
    results["sqlite_ratio_to_plain"] = round(
        results["sqlite_group_commit"]["appends_per_s"]
        / results["sqlite_plain_batched_inserts"]["inserts_per_s"],
        3,
    )
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite_asyncio_group_commit"] = _asyncio_rate(
            SQLiteAuditStore(Path(tmp) / "audit.db"), 256, per_thread * threads // 256
        )
    results["postgres_group_commit"] = _with_postgres(
        lambda url: _group_commit_rate(PostgresAuditStore(url), threads, per_thread // 2)[0]
    )
    results["postgres_asyncio_group_commit"] = _with_postgres(
        lambda url: _asyncio_rate(PostgresAuditStore(url), 256, per_thread * threads // 512)
    )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
    print(json.dumps(main(parser.parse_args().quick), indent=2))
