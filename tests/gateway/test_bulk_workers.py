"""Bulk loads through worker processes (gateway/records/parallel.py) give exactly what the node
alone gives: the same report line by line, the same records, readable and indexed; replacements
keep their data keys; a worker that dies loses nothing."""

from __future__ import annotations

import json
import multiprocessing.connection
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from gateway.app import create_app
from gateway.keys.blind_index import IndexKeyring
from gateway.keys.local import LocalKeyFileProvider, init_local_keyfile
from gateway.keys.provider import WrappedKey
from gateway.node import init_node
from gateway.records import parallel, service
from gateway.records.parallel import BulkWorkers
from gateway.records.protection import IndexView, NodeKeys, index_terms
from gateway.settings import Settings
from gateway.synth import iter_force_records
from schemas import parse_record
from schemas.examples import example_record
from tests.gateway.conftest import NodeClient, make_settings, register_client

FORCE = "20"


def _running(settings: Settings) -> Iterator[NodeClient]:
    client_id, secret = register_client(settings, "rms", ["records:write", "records:read"])
    with TestClient(
        create_app(settings), base_url=settings.node_url, raise_server_exceptions=False
    ) as http:
        yield NodeClient(http=http, settings=settings, client_id=client_id, secret=secret)


def _records(count: int) -> list[dict[str, Any]]:
    return list(iter_force_records(FORCE, forces=[FORCE], records=count, seed=5))


def _ndjson(items: list[Any]) -> bytes:
    return b"".join((i if isinstance(i, bytes) else json.dumps(i).encode()) + b"\n" for i in items)


def _upload(node: NodeClient, body: bytes) -> dict[str, Any]:
    headers = {**node.auth(), "Content-Type": "application/x-ndjson"}
    response = node.http.post("/v1/records/bulk", content=body, headers=headers)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def _workers(node: NodeClient) -> BulkWorkers:
    workers: BulkWorkers = node.http.app.state.node.bulk_workers  # type: ignore[attr-defined]
    return workers


def _stored(node: NodeClient) -> dict[str, tuple[str, set[tuple[str, bytes, int]]]]:
    """record id -> (data key id, its stored blind terms)."""

    async def read() -> dict[str, tuple[str, set[tuple[str, bytes, int]]]]:
        async with node.http.app.state.node.db.sessions() as session:  # type: ignore[attr-defined]
            out: dict[str, tuple[str, set[tuple[str, bytes, int]]]] = {}
            for record_id, key_id in await session.execute(
                text("SELECT record_id, data_key_id FROM records")
            ):
                out[str(record_id)] = (str(key_id), set())
            for record_id, kind, tag, version in await session.execute(
                text("SELECT record_id, term_kind, tag, index_version FROM search_terms")
            ):
                out[str(record_id)][1].add((str(kind), bytes(tag), int(version)))
            return out

    return node.http.portal.call(read)  # type: ignore[union-attr,no-any-return]


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Chunks of 7 lines to the workers and of 5 records to the database: many of each, and
    # their edges never line up.
    monkeypatch.setattr(parallel, "WORKER_CHUNK", 7)
    monkeypatch.setattr(service, "BULK_CHUNK", 5)


def test_workers_report_and_store_what_the_node_alone_does(
    any_backend_settings: Settings, tmp_path: Path, small_chunks: None
) -> None:
    records = _records(60)
    items: list[Any] = list(records)
    items.insert(3, b"{not json")
    items.insert(9, b"")  # blank: skipped, but counted in the line numbers
    items.insert(15, records[10])  # a duplicate of an earlier line
    items.insert(21, example_record("person", id="other-force", owner_force="05"))
    broken = dict(records[20], id="broken")
    broken.pop("grading")
    items.insert(30, broken)
    body = _ndjson(items)

    alone_settings = make_settings(tmp_path / "alone", bulk_workers=0)
    init_node(alone_settings)
    with_workers = any_backend_settings.model_copy(update={"bulk_workers": 2})

    for node in _running(alone_settings):
        assert not _workers(node).enabled
        expected = _upload(node, body)
        auth = node.auth()
        expected_back = {
            r["id"]: node.http.get(f"/v1/records/{r['id']}", headers=auth).json() for r in records
        }

    for node in _running(with_workers):
        report = _upload(node, body)
        assert _workers(node).started
        assert report == expected
        assert (report["accepted"], report["rejected"]) == (60, 4)
        keys: NodeKeys = node.http.app.state.node.keys  # type: ignore[attr-defined]
        stored = _stored(node)
        assert set(stored) == {r["id"] for r in records}
        auth = node.auth()
        for record in records:
            back = node.http.get(f"/v1/records/{record['id']}", headers=auth).json()
            assert back == expected_back[record["id"]]
            # Indexed as the node indexes on its own: every term under every writable version.
            plain = parse_record(record).model_dump(mode="json")
            want = set(index_terms(plain, keys.view, keys.view.writable))
            assert stored[record["id"]][1] == want
        assert sum(bool(terms) for _, terms in stored.values()) > 40  # most kinds are indexed

        # Sent again: nothing changes. Then some are changed: replaced, with their data keys.
        again = _upload(node, body)
        assert (again["unchanged"], again["created"], again["replaced"]) == (60, 0, 0)
        changed = [dict(r) for r in records]
        for r in changed[::6]:
            r["source"] = {**r["source"], "local_ref": r["source"]["local_ref"] + "/b"}
        third = _upload(node, _ndjson(changed))
        assert (third["replaced"], third["unchanged"]) == (10, 50)
        versions = {line["record_id"]: line["version"] for line in third["lines"]}
        assert {versions[r["id"]] for r in changed[::6]} == {2}
        after = _stored(node)
        assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in stored.items()}
        back = node.http.get(f"/v1/records/{changed[0]['id']}", headers=node.auth()).json()
        assert back["source"] == changed[0]["source"] and back["version"] == 2


def test_a_sealed_record_is_used_only_under_the_index_versions_it_was_tagged_for(
    tmp_path: Path,
) -> None:
    init_local_keyfile(tmp_path / "kek.json")
    kek = LocalKeyFileProvider(tmp_path / "kek.json")
    try:
        keys = NodeKeys(FORCE, kek, IndexKeyring(bytes(range(32)), FORCE))
        record = parse_record(_records(1)[0]).model_dump(mode="json")
        record["version"] = 1
        lines = [(1, json.dumps(record).encode())]
        one = IndexView(active=1, writable=(1,), rings={1: keys.index})
        outcome = parallel._from_wire(parallel.prepare_chunk(lines, FORCE, one, 10_000)[0])
        assert outcome.sealed is not None
        sealed = outcome.sealed

        # The same index versions: the worker's sealing is kept, its key wrapped by the node.
        [kept] = service._protect_batch([dict(record)], {}, keys, one, None, [sealed])
        assert kept is not None
        protected, version, created = kept
        assert (version, created) == (1, True)
        assert protected.data_key_id == sealed.protected.data_key_id
        assert protected.wrapped_key is not None
        assert kek.unwrap(protected.wrapped_key) == sealed.data_key

        # The versions changed after the chunk went to the worker: the node seals it again.
        two = IndexView(
            active=1, writable=(1, 2), rings={1: keys.index, 2: IndexKeyring(bytes(32), FORCE)}
        )
        [redone] = service._protect_batch([dict(record)], {}, keys, two, None, [sealed])
        assert redone is not None
        assert redone[0].data_key_id != sealed.protected.data_key_id
        assert {v for _, _, v in redone[0].terms} == {1, 2}
        assert isinstance(redone[0].wrapped_key, WrappedKey)
    finally:
        kek.close()


def test_an_upload_shorter_than_a_chunk_never_starts_the_workers(node: NodeClient) -> None:
    report = _upload(node, _ndjson(_records(5)))
    assert report["accepted"] == 5
    assert _workers(node).enabled and not _workers(node).started


def test_a_worker_that_dies_loses_nothing(node_settings: Settings, small_chunks: None) -> None:
    records = _records(40)
    settings = node_settings.model_copy(update={"bulk_workers": 1})
    for node in _running(settings):
        assert _upload(node, _ndjson(records[:20]))["accepted"] == 20
        workers = _workers(node)
        processes = list(workers._pool._processes.values())  # type: ignore[union-attr]
        assert processes
        for process in processes:
            assert process.pid is not None
            os.kill(process.pid, signal.SIGKILL)
        multiprocessing.connection.wait([p.sentinel for p in processes])

        report = _upload(node, _ndjson(records[20:]))
        assert (report["accepted"], report["rejected"]) == (20, 0)
        assert set(_stored(node)) == {r["id"] for r in records}
        auth = node.auth()
        for record in records[20:]:
            back = node.http.get(f"/v1/records/{record['id']}", headers=auth)
            assert back.status_code == 200
        # The next large upload has a working pool again.
        changed = [dict(r, source={**r["source"], "local_ref": "changed"}) for r in records]
        assert _upload(node, _ndjson(changed))["replaced"] == 40
        assert workers.started


@pytest.mark.parametrize("launcher", ["console script", "python -m gateway"])
def test_a_worker_does_not_load_the_command_line_or_the_web_app(launcher: str) -> None:
    """Spawned workers re-run the node's main script (as `__mp_main__`) before anything else;
    the `gateway` command and `python -m gateway` keep that import small."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("gateway")
    if launcher == "console script":
        assert script.exists(), "the gateway command is installed by `make venv`"
        main = f"import runpy; runpy.run_path({str(script)!r}, run_name='__mp_main__')"
    else:
        main = "import runpy; runpy.run_module('gateway.__main__', run_name='__mp_main__')"
    probe = (
        f"{main}; import sys; from gateway.records import parallel; "
        "print(sorted(m for m in ('gateway.cli', 'gateway.app', 'fastapi', 'uvicorn') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout
