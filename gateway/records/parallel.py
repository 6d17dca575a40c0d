"""Bulk loads on every core: lines are parsed, validated and sealed in worker processes.

A node is one Python process, and the CPU work of a bulk load (JSON parsing, schema validation,
AES-GCM per sensitive field, HMAC blind tags) is held to one core by the interpreter lock. Here a
pool of worker processes does that work for chunks of lines while the node process stores the
chunks before them (existence checks, inserts, audit, commit), in order, exactly as before.

What crosses to a worker and back:
- to it: the raw lines with their numbers, the force code and the blind-index key view (the
  HMAC keys the node tags with anyway);
- from it: per line, the validated record, or the errors that rejected it, and the record sealed
  *as a new record*: its encrypted document, its blind tags and its fresh data key, unwrapped.

The KEK never leaves the node process: the node wraps every data key itself (with an HSM, in the
token) before anything is stored. A sealed record is only a proposal. The node drops it and seals
the record itself, as for a small upload, when the record turns out to exist already (a
replacement keeps its data key and takes the next version) or when the index versions changed
after the chunk was sent. Uploads shorter than one chunk never reach the pool, and the pool is
started on the first upload that needs it.

If a worker dies (killed, out of memory) the pool is discarded, the chunk is redone in the node
process and the next large upload starts a new pool: nothing of the upload is lost.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

import orjson
import structlog

from gateway.records.protection import IndexView, ProtectedRecord, TermMemo, seal_new_record
from schemas.validation import parse_line

log = structlog.get_logger(__name__)

# Lines per worker task: the same size as a stored chunk (service.BULK_CHUNK), so one task
# feeds one transaction.
WORKER_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Sealed:
    """A record protected as new by a worker: its data key is not wrapped yet."""

    protected: ProtectedRecord
    data_key: bytes
    writable: tuple[int, ...]  # the index versions its tags were made for


@dataclass(frozen=True, slots=True)
class LineOutcome:
    """One non-blank NDJSON line, parsed and validated."""

    line: int
    record: dict[str, Any] | None  # the record in plain JSON form; None when rejected
    errors: tuple[tuple[str, str], ...] = ()
    sealed: Sealed | None = None


def outcome_of(raw: bytes, number: int, max_line_bytes: int) -> LineOutcome | None:
    """Parse and validate one line (None for a blank line): the one definition of a bulk line,
    in the node process and in the workers alike."""
    parsed = parse_line(raw, number, max_line_bytes=max_line_bytes)
    if parsed is None:
        return None
    if parsed.record is None:
        return LineOutcome(parsed.line, None, tuple((p, d) for p, d in parsed.errors))
    return LineOutcome(parsed.line, parsed.record.model_dump(mode="json"))


class _WireSealed(NamedTuple):
    """`Sealed` as it travels from a worker. The encrypted document goes as JSON bytes, the
    form in which it is stored: a nested dict of many short strings costs several times more
    to pickle and unpickle, and would be serialized again on insert."""

    record_id: str
    kind: str
    schema_version: str
    document_json: bytes
    data_key_id: str
    terms: list[tuple[str, bytes, int]]
    policy_attrs: dict[str, Any]
    class_key: str
    classification_rank: int
    handling_code: str
    next_review: date | None
    content_sha256: str
    data_key: bytes
    writable: tuple[int, ...]


# (line, record as JSON bytes or None, errors, sealed or None)
_WireLine = tuple[int, bytes | None, tuple[tuple[str, str], ...], _WireSealed | None]


def prepare_chunk(
    lines: list[tuple[int, bytes]], force: str, view: IndexView, max_line_bytes: int
) -> list[_WireLine]:
    """A worker's task: parse, validate and seal (as new) the lines of one chunk. Records of
    another force are parsed but not sealed: the node rejects them."""
    memo: TermMemo = {}  # this chunk's own values only, dropped with it
    out: list[_WireLine] = []
    for number, raw in lines:
        outcome = outcome_of(raw, number, max_line_bytes)
        if outcome is None:
            continue
        record = outcome.record
        if record is None:
            out.append((outcome.line, None, outcome.errors, None))
            continue
        wire: _WireSealed | None = None
        if record.get("owner_force") == force:
            record["version"] = 1  # what the node assigns a new record (service.store_records)
        plain = orjson.dumps(record)  # before sealing, which encrypts the record in place
        if record.get("owner_force") == force:
            protected, data_key = seal_new_record(record, force=force, view=view, memo=memo)
            wire = _WireSealed(
                record_id=protected.record_id,
                kind=protected.kind,
                schema_version=protected.schema_version,
                document_json=orjson.dumps(protected.document),
                data_key_id=protected.data_key_id,
                terms=protected.terms,
                policy_attrs=protected.policy_attrs,
                class_key=protected.class_key,
                classification_rank=protected.classification_rank,
                handling_code=protected.handling_code,
                next_review=protected.next_review,
                content_sha256=protected.content_sha256,
                data_key=data_key,
                writable=tuple(view.writable),
            )
        out.append((outcome.line, plain, (), wire))
    return out


def _from_wire(item: _WireLine) -> LineOutcome:
    line, record_json, errors, wire = item
    if record_json is None:
        return LineOutcome(line, None, errors)
    sealed = None
    if wire is not None:
        protected = ProtectedRecord(
            record_id=wire.record_id,
            kind=wire.kind,
            schema_version=wire.schema_version,
            # Stored as it came: the database's JSON serializer is orjson's, and a fragment is
            # written verbatim (gateway/db.py), so the stored text is the same as if the
            # document had been serialized here.
            document=orjson.Fragment(wire.document_json),
            data_key_id=wire.data_key_id,
            wrapped_key=None,
            terms=wire.terms,
            policy_attrs=wire.policy_attrs,
            class_key=wire.class_key,
            classification_rank=wire.classification_rank,
            handling_code=wire.handling_code,
            next_review=wire.next_review,
            content_sha256=wire.content_sha256,
        )
        sealed = Sealed(protected, wire.data_key, wire.writable)
    return LineOutcome(line, orjson.loads(record_json), errors, sealed)


def _exit_with_node() -> None:
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()  # returns once the node process has gone, however it ended
        os._exit(0)


def _worker_started() -> None:
    """A worker's start.

    - It ends when the node process ends, even one killed outright: a worker otherwise waits on
      its task queue for ever (the queue's write end is shared by the workers themselves).
    - What it imported is moved out of the cycle collector's reach, as the node does with its
      own startup heap (service.freeze_startup_heap): a worker allocates as many short-lived
      objects per record as the node did."""
    threading.Thread(target=_exit_with_node, name="exit-with-node", daemon=True).start()
    gc.collect()
    gc.freeze()


def default_workers() -> int:
    """Worker processes for bulk loads when not configured: one per core, at most four."""
    return min(os.cpu_count() or 1, 4)


class BulkWorkers:
    """The node's pool of bulk-load worker processes, started when first needed."""

    def __init__(self, processes: int) -> None:
        self.processes = max(0, processes)
        self._pool: ProcessPoolExecutor | None = None

    @property
    def enabled(self) -> bool:
        return self.processes > 0

    @property
    def started(self) -> bool:
        return self._pool is not None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # "spawn": a fresh interpreter, never a fork of this threaded server process.
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_started,
            )
            log.info("bulk_workers.started", processes=self.processes)
        return self._pool

    async def prepare(
        self, lines: list[tuple[int, bytes]], *, force: str, view: IndexView, max_line_bytes: int
    ) -> list[LineOutcome]:
        loop = asyncio.get_running_loop()
        try:
            wire = await loop.run_in_executor(
                self._executor(), prepare_chunk, lines, force, view, max_line_bytes
            )
        except BrokenProcessPool:
            # A worker died. Nothing of this chunk was stored: redo it here, start afresh later.
            log.warning("bulk_workers.broken", processes=self.processes)
            self._discard()
            wire = await asyncio.to_thread(prepare_chunk, lines, force, view, max_line_bytes)
        return [_from_wire(item) for item in wire]

    def _discard(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (the node is shutting down)."""
        self._discard()


async def line_outcomes(
    lines: AsyncIterator[bytes],
    *,
    max_line_bytes: int,
    workers: BulkWorkers | None,
    force: str,
    view: Callable[[], IndexView],
) -> AsyncGenerator[LineOutcome, None]:
    """The outcomes of an upload's non-blank lines, in line order.

    With workers, whole chunks are handed to the pool as they arrive, keeping one more chunk in
    flight than there are workers (so none waits) and no more (memory stays bounded whatever
    the upload's length). An upload shorter than one chunk is parsed here."""
    number = 0
    if workers is None or not workers.enabled:
        async for raw in lines:
            number += 1
            outcome = outcome_of(raw, number, max_line_bytes)
            if outcome is not None:
                yield outcome
        return
    chunk: list[tuple[int, bytes]] = []
    in_flight: deque[asyncio.Future[list[LineOutcome]]] = deque()

    def send(lines_of_chunk: list[tuple[int, bytes]]) -> None:
        in_flight.append(
            asyncio.ensure_future(
                workers.prepare(
                    lines_of_chunk, force=force, view=view(), max_line_bytes=max_line_bytes
                )
            )
        )

    try:
        async for raw in lines:
            number += 1
            chunk.append((number, raw))
            if len(chunk) < WORKER_CHUNK:
                continue
            send(chunk)
            chunk = []
            while len(in_flight) > workers.processes:
                for outcome in await in_flight.popleft():
                    yield outcome
        if chunk and in_flight:
            send(chunk)
        elif chunk:  # the whole upload is shorter than a chunk: not worth a worker
            for number, raw in chunk:
                outcome = outcome_of(raw, number, max_line_bytes)
                if outcome is not None:
                    yield outcome
        while in_flight:
            for outcome in await in_flight.popleft():
                yield outcome
    finally:
        # The upload stopped early (a rejected request, a closed connection): drop the rest.
        for future in in_flight:
            future.cancel()
            future.add_done_callback(_consume)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a dropped chunk's outcome, so that its failure is not reported as unhandled."""
    if not future.cancelled():
        future.exception()


def with_wrapped_key(sealed: Sealed, wrap: Callable[[bytes], Any]) -> ProtectedRecord:
    """The sealed record with its data key wrapped under the node's KEK (`KekProvider.wrap`).
    Completes the record in place (`dataclasses.replace` costs more than the wrap): a sealed
    record is stored once, by the chunk that carried it."""
    sealed.protected.wrapped_key = wrap(sealed.data_key)
    return sealed.protected
