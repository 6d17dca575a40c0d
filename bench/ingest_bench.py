"""Bulk ingest figures (issue 4): a real node process importing synthetic records over HTTP, on
SQLite and PostgreSQL, beside a plaintext validate-and-insert baseline of the same records in the
same run; in full mode also the 1,000,000-record node (resident memory, lookup by phone number).

Run: ``.venv/bin/python -m bench --only ingest [--quick]``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import queue
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import Connection

from bench.node_process import (
    BenchNode,
    child_pids,
    cpu_seconds,
    postgres_available,
    rss_mb,
    temp_postgres_database,
)
from gateway.db import Database
from gateway.keys.local import LocalKeyFileProvider
from gateway.records import repository
from gateway.records.importer import DEFAULT_LINES_PER_CHUNK
from gateway.records.index_versions import load_node_keys
from gateway.synth import iter_force_records
from schemas import IndexKind, parse_record, walk_fields

FORCE = "05"
SEED = 7
# Lines per bulk request: what `gateway import` sends by default.
CHUNK_LINES = DEFAULT_LINES_PER_CHUNK
PHONE_KINDS = frozenset({"phone", "county_line"})  # the record kinds that carry phone numbers
LOOKUPS = 300


def record_chunks(count: int, phones: list[str] | None = None) -> Iterator[tuple[bytes, int]]:
    """NDJSON chunks of synthetic records for one force, `CHUNK_LINES` lines each, collecting the
    phone numbers they hold into `phones`."""
    lines: list[bytes] = []
    records = iter_force_records(FORCE, forces=[FORCE], records=count, seed=SEED)
    for record in records:
        if phones is not None and record["kind"] in PHONE_KINDS:
            phones.extend(
                str(f.value)
                for f in walk_fields(record)
                if f.spec.index == IndexKind.PHONE and isinstance(f.value, str)
            )
        lines.append(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        if len(lines) == CHUNK_LINES:
            yield b"".join(lines), len(lines)
            lines = []
    if lines:
        yield b"".join(lines), len(lines)


def plaintext_baseline(chunks: list[tuple[bytes, int]], path: Path) -> dict[str, Any]:
    """The cost floor: validate each record with the same schema code and insert it as plain
    JSON, one transaction per chunk, no encryption, no blind index, no audit, no HTTP."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # the gateway's own SQLite setting
    conn.execute("CREATE TABLE records (id TEXT PRIMARY KEY, kind TEXT, document TEXT)")
    total = 0
    started = time.perf_counter()
    for body, _count in chunks:
        rows = []
        for line in body.splitlines():
            record = parse_record(json.loads(line))
            rows.append((record.id, record.kind, record.model_dump_json()))
        conn.execute("BEGIN")
        conn.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", rows)
        conn.execute("COMMIT")
        total += len(rows)
    elapsed = time.perf_counter() - started
    conn.close()
    return {"records": total, "seconds": round(elapsed, 2), "records_per_s": round(total / elapsed)}


def _post_chunk(client: httpx.Client, token: str, body: bytes, count: int) -> None:
    response = client.post(
        "/v1/records/bulk",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"bulk upload refused ({response.status_code}): {response.text[:300]}")
    accepted = int(response.json()["accepted"])
    if accepted != count:
        raise RuntimeError(f"bulk upload accepted {accepted} of {count} lines")


def gateway_import(
    node: BenchNode, url: str, chunks: Iterator[tuple[bytes, int]]
) -> dict[str, Any]:
    """Bulk import over HTTP, one uploader (concurrency 1, like `gateway import`), chunks of
    `CHUNK_LINES`. The chunks may be produced lazily; production time then overlaps uploads."""
    token = node.token(url)
    total = 0
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=600) as client:
        for body, count in chunks:
            _post_chunk(client, token, body, count)
            total += count
    elapsed = time.perf_counter() - started
    return {"records": total, "seconds": round(elapsed, 2), "records_per_s": round(total / elapsed)}


def _prefetched(chunks: Iterator[tuple[bytes, int]], depth: int = 4) -> Iterator[tuple[bytes, int]]:
    """Produce chunks on a thread so generation overlaps the node's work (the node is another
    process, so the GIL is not shared with it)."""
    buffer: queue.Queue[tuple[bytes, int] | None] = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for chunk in chunks:
                buffer.put(chunk)
        except BaseException as exc:
            failure.append(exc)
        finally:
            buffer.put(None)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    while (item := buffer.get()) is not None:
        yield item
    thread.join()
    if failure:
        raise failure[0]


def _read_by_tags(
    terms: list[tuple[str, bytes]], conn: Connection
) -> list[repository.StoredRecord]:
    ids = repository.candidate_ids_sync(conn, terms)
    return repository.fetch_records_sync(conn, sorted(ids))


def phone_lookups(node: BenchNode, phones: list[str]) -> dict[str, Any]:
    """Lookup by phone number through the blind index, with the search service's reads: compute
    the node's tag for the normalised number, find record ids by tag, fetch their stored rows."""

    async def run() -> dict[str, Any]:
        url = node.database_url or f"sqlite+aiosqlite:///{(node.data_dir / 'node.db').as_posix()}"
        db = Database(url)
        kek = LocalKeyFileProvider(node.data_dir / "kek.json")
        try:
            async with db.sessions() as session:
                keyring = (await load_node_keys(session, kek, FORCE)).index
            timings: list[float] = []
            found = 0
            for phone in phones:
                t0 = time.perf_counter()
                terms = [
                    (t.term_kind, bytes.fromhex(t.tag_hex))
                    for t in keyring.terms(IndexKind.PHONE, phone)
                ]
                rows = await db.run_sync(functools.partial(_read_by_tags, terms))
                timings.append(time.perf_counter() - t0)
                found += bool(rows)
        finally:
            kek.close()
            await db.dispose()
        timings.sort()
        return {
            "lookups": len(timings),
            "found": found,
            "median_ms": round(statistics.median(timings) * 1000, 3),
            "p95_ms": round(timings[int(len(timings) * 0.95) - 1] * 1000, 3),
            "concurrency": 1,
        }

    # Warm the connection pool and SQLite page cache the way a serving node would be warm.
    return asyncio.run(run())


def _run_backend(
    tmp: Path, chunks: list[tuple[bytes, int]], database_url: str | None
) -> dict[str, Any]:
    with BenchNode(
        data_dir=tmp / ("pg-node" if database_url else "sqlite-node"), database_url=database_url
    ) as node:
        node.init()
        server = node.serve()
        cpu_before = cpu_seconds(server.pid)
        figures = gateway_import(node, server.url, iter(chunks))
        # CPU time of the node process per record: less sensitive to other load on a shared
        # machine than wall-clock throughput.
        figures["node_cpu_us_per_record"] = round(
            (cpu_seconds(server.pid) - cpu_before) / max(figures["records"], 1) * 1e6, 1
        )
        figures.update(rss_mb(server.pid))
        # The bulk-load worker processes (started by the first large upload, kept while the
        # node runs): their CPU and memory are part of what the import cost.
        workers = child_pids(server.pid)
        figures["workers"] = len(workers)
        figures["workers_cpu_us_per_record"] = round(
            sum(cpu_seconds(w) for w in workers) / max(figures["records"], 1) * 1e6, 1
        )
        figures["workers_peak_rss_mb"] = [rss_mb(w)["peak_rss_mb"] for w in workers]
        return figures


def main(quick: bool) -> dict[str, Any]:
    count = 20_000 if quick else 100_000
    phones: list[str] = []
    chunks = list(record_chunks(count, phones))
    results: dict[str, Any] = {
        "records": count,
        "chunk_lines": CHUNK_LINES,
        "uploaders": 1,
        "mean_record_bytes": round(sum(len(b) for b, _ in chunks) / count),
    }
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp_name:
        tmp = Path(tmp_name)
        results["baseline_plaintext_sqlite"] = plaintext_baseline(chunks, tmp / "plain.db")
        results["gateway_sqlite"] = _run_backend(tmp, chunks, None)
        results["sqlite_ratio_to_baseline"] = round(
            results["gateway_sqlite"]["records_per_s"]
            / results["baseline_plaintext_sqlite"]["records_per_s"],
            3,
        )
        if postgres_available():
            with temp_postgres_database("gw_bench_ingest") as url:
                results["gateway_postgres"] = _run_backend(tmp, chunks, url)
            results["postgres_ratio_to_baseline"] = round(
                results["gateway_postgres"]["records_per_s"]
                / results["baseline_plaintext_sqlite"]["records_per_s"],
                3,
            )
        else:
            results["gateway_postgres"] = {"skipped": "PostgreSQL not reachable"}
        del chunks
        results["million"] = million_record_node(tmp, 20_000 if quick else 1_000_000)
    return results


def million_record_node(tmp: Path, count: int) -> dict[str, Any]:
    """A SQLite node loaded with `count` records (1,000,000 in full mode): its resident memory
    while serving, and lookups by phone number through the blind index."""
    phones: list[str] = []
    with BenchNode(data_dir=tmp / "big-node") as node:
        node.init()
        server = node.serve()
        figures = gateway_import(node, server.url, _prefetched(record_chunks(count, phones)))
        figures["node_rss_after_import"] = rss_mb(server.pid)
        figures["phone_lookup"] = phone_lookups(
            node, phones[:: max(1, len(phones) // LOOKUPS)][:LOOKUPS]
        )
        # Memory after serving lookups' neighbours too: the node process itself.
        figures["node_rss_end"] = rss_mb(server.pid)
        figures["database_mb"] = round(
            sum(p.stat().st_size for p in node.data_dir.glob("*.db*")) / 1e6, 1
        )
    return figures


if __name__ == "__main__":
    import sys

    print(json.dumps(main(quick="--quick" in sys.argv[1:]), indent=2))
