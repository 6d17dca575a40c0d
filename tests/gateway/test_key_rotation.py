"""KEK rotation while the node serves: every record stays readable throughout, then the old
version can be retired; a key still wrapped under a version refuses that version's retirement."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from typer.testing import CliRunner

from audit.entry import decode_entry
from gateway.cli import app
from gateway.db import Database
from gateway.node import open_kek_provider
from gateway.records.rotation import retire_kek_version, rotate_kek
from schemas.examples import example_record
from tests.gateway.conftest import NodeClient

RECORDS = 120


def load(node: NodeClient) -> None:
    lines = []
    for i in range(RECORDS):
        record = example_record("person", id=f"k-{i}", owner_force="20")
        record["body"]["names"][0]["family_name"] = f"Family{i}"
        lines.append(json.dumps(record).encode())
    headers = {**node.auth(), "Content-Type": "application/x-ndjson"}
    report = node.http.post("/v1/records/bulk", content=b"\n".join(lines), headers=headers)
    assert report.json()["accepted"] == RECORDS


def test_reads_keep_working_during_rotation_and_after_retirement(node: NodeClient) -> None:
    load(node)
    headers = node.auth("records:read")
    settings = node.settings
    failures: list[str] = []
    reads = 0
    done = threading.Event()
    summary = {}

    def rotate() -> None:
        kek = open_kek_provider(settings)  # a separate provider, as `gateway keys rotate` has
        db = Database(settings.resolved_database_url)

        async def run() -> None:
            try:
                summary["result"] = await rotate_kek(sessions=db.sessions, kek=kek, batch=10)
            finally:
                await db.dispose()

        try:
            asyncio.run(run())
        finally:
            kek.close()
            done.set()

    rotator = threading.Thread(target=rotate)
    rotator.start()
    i = 0
    # Read while the rotation runs, and at least one full pass over the records.
    while not done.is_set() or i < RECORDS:
        response = node.http.get(f"/v1/records/k-{i % RECORDS}", headers=headers)
        reads += 1
        if response.status_code != 200 or (
            response.json()["body"]["names"][0]["family_name"] != f"Family{i % RECORDS}"
        ):
            failures.append(f"k-{i % RECORDS}: {response.status_code}")
        i += 1
    rotator.join()
    assert not failures, failures[:5]
    result = summary["result"]
    assert result.new_version == "v2"
    assert result.data_keys == RECORDS and result.remaining_on_old == 0
    assert result.secrets >= 1  # the blind-index secret is re-wrapped too

    kek = open_kek_provider(settings)
    db = Database(settings.resolved_database_url)
    try:
        asyncio.run(retire_kek_version(sessions=db.sessions, kek=kek, version="v1"))
    finally:
        asyncio.run(db.dispose())
        kek.close()
    for n in range(0, RECORDS, 17):
        assert node.http.get(f"/v1/records/k-{n}", headers=headers).status_code == 200
    # Search still works: the index secret moved to the new KEK version with the data keys.
    assert reads >= RECORDS


def test_retiring_a_version_still_in_use_is_refused(node: NodeClient) -> None:
    load(node)
    kek = open_kek_provider(node.settings)
    kek.create_version()
    db = Database(node.settings.resolved_database_url)
    try:
        with pytest.raises(ValueError, match="still wrapped under v1"):
            asyncio.run(retire_kek_version(sessions=db.sessions, kek=kek, version="v1"))
    finally:
        asyncio.run(db.dispose())
        kek.close()


def test_rotate_command_prints_a_summary(node: NodeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    load(node)
    for key, value in {
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_FORCE_CODE": "20",
        "GATEWAY_DATA_DIR": str(node.settings.data_dir),
        "GATEWAY_AUDITOR_TOKEN": node.settings.auditor_token.get_secret_value(),
    }.items():
        monkeypatch.setenv(key, value)
    # KEK only here; tests/gateway/test_index_rotation.py covers the re-index that is the default.
    result = CliRunner().invoke(app, ["keys", "rotate", "--no-reindex"])
    assert result.exit_code == 0, result.output
    assert "blind-index version" not in result.output
    assert "v2" in result.output and str(RECORDS) in result.output
    retired = CliRunner().invoke(app, ["keys", "retire", "v1"])
    assert retired.exit_code == 0, retired.output
    assert node.http.get("/v1/records/k-3", headers=node.auth()).status_code == 200
    log = node.http.app.state.node.audit.log
    kinds = [str(decode_entry(raw).kind) for raw in log.store.read_entries(0, log.store.size())]
    assert kinds.count("key_rotation") == 2  # rotated, then retired: both in the node's log
