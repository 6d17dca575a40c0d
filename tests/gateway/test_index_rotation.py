"""Re-indexing as part of key rotation: new blind-index keys, every record re-tagged while the node
serves and finds records throughout, then the old index retired — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.db import Database
from gateway.node import init_node, open_kek_provider
from gateway.records import index_versions
from gateway.records.index_versions import IndexVersionError
from gateway.records.rotation import IndexRotationSummary, rotate_index, rotate_kek
from gateway.search.service import SearchTerms
from policies import Mode
from schemas.examples import example_record
from tests.gateway.conftest import NodeClient
from tests.gateway.test_search_service import analyst, context, search
from tests.gateway.test_sync_api import audit_kinds, raw_rows

PHONES = 40


def number(i: int) -> str:
    return f"+447911123{i:03d}"


def phone(i: int) -> dict[str, Any]:
    record = example_record("phone", id=f"ph-{i}", owner_force="20")
    record["body"]["number"] = number(i)
    return record


def send(node: NodeClient, records: list[dict[str, Any]]) -> None:
    body = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    headers = {**node.auth(), "Content-Type": "application/x-ndjson"}
    response = node.http.post("/v1/records/bulk", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["rejected"] == 0, response.text


def found(node: NodeClient, i: int) -> bool:
    answer = search(node, SearchTerms(phone=number(i)), analyst("20"), context(Mode.HITS))
    return [h.record_id for h in answer.hits] == [f"ph-{i}"]


def offline(node: NodeClient, work: Callable[[Database, Any], Any]) -> Any:
    """Run `work(db, kek)` as `gateway keys ...` does: its own database engine and KEK provider,
    in its own thread and event loop, beside the serving node."""
    kek = open_kek_provider(node.settings)
    db = Database(node.settings.resolved_database_url)

    async def run() -> Any:
        try:
            return await work(db, kek)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    finally:
        kek.close()


def refresh(node: NodeClient) -> None:
    """What the node's index watcher does every few seconds, done now."""
    gateway_node = node.http.app.state.node

    async def run() -> None:
        async with gateway_node.db.sessions() as session:
            await index_versions.refresh(session, gateway_node.keys)

    anyio.run(run)


def tags_by_version(node: NodeClient) -> dict[int, set[tuple[str, str, bytes]]]:
    out: dict[int, set[tuple[str, str, bytes]]] = {}
    for record_id, kind, tag, version in raw_rows(
        node, "SELECT record_id, term_kind, tag, index_version FROM search_terms"
    ):
        out.setdefault(int(version), set()).add((record_id, kind, bytes(tag)))
    return out


def states(node: NodeClient) -> dict[int, str]:
    return {int(v): str(s) for v, s in raw_rows(node, "SELECT version, state FROM index_versions")}


def rotate(node: NodeClient, batch: int = 7) -> IndexRotationSummary:
    async def work(db: Database, kek: Any) -> IndexRotationSummary:
        await rotate_kek(sessions=db.sessions, kek=kek, batch=batch)
        return await rotate_index(sessions=db.sessions, kek=kek, force="20", batch=batch)

    result: IndexRotationSummary = offline(node, work)
    return result


def retire(node: NodeClient, min_age: float = 0) -> list[int]:
    async def work(db: Database, _kek: Any) -> list[int]:
        return await index_versions.retire_previous(db.sessions, min_age_seconds=min_age)

    retired: list[int] = offline(node, work)
    return retired


def test_rotation_reindexes_while_searches_and_writes_go_on(any_node: NodeClient) -> None:
    node = any_node
    send(node, [phone(i) for i in range(PHONES)])
    before = tags_by_version(node)
    assert set(before) == {1}

    summary: dict[str, IndexRotationSummary] = {}
    done = threading.Event()

    def rotator() -> None:
        try:
            summary["result"] = rotate(node)
        finally:
            done.set()

    thread = threading.Thread(target=rotator)
    thread.start()
    misses: list[int] = []
    written = PHONES
    searches = 0
    # Search and write while the rotation runs (and at least one round after it), refreshing the
    # node's view of the index versions as its watcher would.
    while not done.is_set() or searches < PHONES:
        i = searches % written
        if not found(node, i):
            misses.append(i)
        if searches % 5 == 0:
            send(node, [phone(written)])
            written += 1
        if searches % 3 == 0:
            refresh(node)
        searches += 1
    thread.join()
    assert not misses, misses[:10]
    result = summary["result"]
    assert result.activated and result.created and result.version == 2
    assert result.reindexed >= 1

    refresh(node)
    gateway_node = node.http.app.state.node
    assert gateway_node.keys.index_version == 2
    assert gateway_node.keys.view.writable == (1, 2)
    assert states(node) == {1: "previous", 2: "active"}
    assert {int(v) for (v,) in raw_rows(node, "SELECT DISTINCT index_version FROM records")} == {2}
    tags = tags_by_version(node)
    # Every record has the same terms under both versions, with different tags (other keys).
    for version in (1, 2):
        per_record = {(r, k) for r, k, _ in tags[version]}
        assert per_record == {(f"ph-{i}", "phone") for i in range(written)}
    assert not {t for _, _, t in tags[1]} & {t for _, _, t in tags[2]}
    # Every record, old or written during the rotation, is found with the new keys.
    assert all(found(node, i) for i in range(written))

    assert retire(node) == [1]
    refresh(node)
    assert states(node) == {1: "retired", 2: "active"}
    assert set(tags_by_version(node)) == {2}
    secrets = {n for (n,) in raw_rows(node, "SELECT name FROM node_secrets")}
    assert "blind-index-root-v1" not in secrets and "blind-index-root-v2" in secrets
    assert gateway_node.keys.view.writable == (2,)
    assert all(found(node, i) for i in range(written))
    send(node, [phone(written)])
    assert found(node, written)
    assert set(tags_by_version(node)) == {2}


def test_a_writer_that_missed_a_new_version_adds_its_tags(any_node: NodeClient) -> None:
    node = any_node
    send(node, [phone(i) for i in range(3)])

    async def begin(db: Database, kek: Any) -> tuple[int, bool]:
        from gateway.keys.blind_index import new_index_root

        return await index_versions.begin_version(db.sessions, kek, new_index_root())

    assert offline(node, begin) == (2, True)
    gateway_node = node.http.app.state.node
    assert gateway_node.keys.view.writable == (1,)  # the node has not looked yet
    send(node, [phone(10)])
    # The write re-checked the versions before committing and tagged under version 2 as well.
    assert gateway_node.keys.view.writable == (1, 2)
    tags = tags_by_version(node)
    assert ("ph-10", "phone") in {(r, k) for r, k, _ in tags[2]}
    assert raw_rows(node, "SELECT index_version FROM records WHERE record_id = 'ph-10'") == [(2,)]
    # The older records still need the re-index: switching now is refused, nothing changes.

    async def switch(db: Database, _kek: Any) -> int:
        return await index_versions.activate(db.sessions, 2)

    assert offline(node, switch) == 3
    assert states(node) == {1: "active", 2: "building"}


def test_a_writer_that_missed_a_retirement_removes_its_old_tags(any_node: NodeClient) -> None:
    node = any_node
    send(node, [phone(i) for i in range(3)])
    refresh(node)
    rotate(node)
    refresh(node)
    gateway_node = node.http.app.state.node
    assert gateway_node.keys.view.writable == (1, 2)
    assert retire(node) == [1]
    # Not refreshed: the node would still tag under version 1, and must not leave such tags.
    send(node, [phone(20)])
    assert set(tags_by_version(node)) == {2}
    assert gateway_node.keys.view.writable == (2,)
    assert found(node, 20)


def test_retirement_waits_for_nodes_to_switch(node: NodeClient) -> None:
    send(node, [phone(i) for i in range(3)])
    rotate(node)
    with pytest.raises(IndexVersionError, match="retire the previous version"):
        retire(node, min_age=3600)
    assert states(node) == {1: "previous", 2: "active"}
    assert set(tags_by_version(node)) == {1, 2}


def test_an_interrupted_reindex_resumes_the_same_version(node: NodeClient) -> None:
    send(node, [phone(i) for i in range(25)])

    class Stop(Exception):
        pass

    def stop_after_first_batch(done: int, total: int) -> None:
        raise Stop

    async def interrupted(db: Database, kek: Any) -> None:
        with pytest.raises(Stop):
            await rotate_index(
                sessions=db.sessions,
                kek=kek,
                force="20",
                batch=10,
                progress=stop_after_first_batch,
            )

    offline(node, interrupted)
    assert states(node) == {1: "active", 2: "building"}
    assert raw_rows(node, "SELECT COUNT(*) FROM records WHERE index_version = 2") == [(10,)]

    async def resumed(db: Database, kek: Any) -> IndexRotationSummary:
        return await rotate_index(sessions=db.sessions, kek=kek, force="20", batch=10)

    result: IndexRotationSummary = offline(node, resumed)
    assert (result.version, result.created, result.reindexed, result.activated) == (
        2,
        False,
        15,
        True,
    )
    refresh(node)
    assert all(found(node, i) for i in range(25))


def test_a_restarted_node_uses_the_new_keys_and_init_makes_no_old_secret(
    node: NodeClient,
) -> None:
    send(node, [phone(i) for i in range(5)])
    rotate(node)
    retire(node)
    init_node(node.settings)  # idempotent: must not recreate the retired version's secret
    names = {n for (n,) in raw_rows(node, "SELECT name FROM node_secrets")}
    assert "blind-index-root-v1" not in names

    from gateway.node import open_node

    async def reopen() -> tuple[int, tuple[int, ...]]:
        reopened = await open_node(node.settings)
        try:
            return reopened.keys.index_version, reopened.keys.view.writable
        finally:
            await reopened.close()

    assert anyio.run(reopen) == (2, (2,))


def test_rotate_and_retire_commands_reindex_and_drop_the_old_index(
    node: NodeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    send(node, [phone(i) for i in range(12)])
    for key, value in {
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_FORCE_CODE": "20",
        "GATEWAY_DATA_DIR": str(node.settings.data_dir),
        "GATEWAY_AUDITOR_TOKEN": node.settings.auditor_token.get_secret_value(),
        "GATEWAY_INDEX_REFRESH_SECONDS": "0",
    }.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "2 (active)" in result.output and "records re-indexed" in result.output
    assert states(node) == {1: "previous", 2: "active"}
    retired = CliRunner().invoke(app, ["keys", "retire", "v1"])
    assert retired.exit_code == 0, retired.output
    assert "blind-index version(s) [1] retired" in retired.output
    assert set(tags_by_version(node)) == {2}
    refresh(node)
    assert all(found(node, i) for i in range(12))
    assert audit_kinds(node).count("key_rotation") == 4  # KEK + index, each rotated and retired


def test_a_second_rotation_waits_for_the_first_index_to_be_retired(node: NodeClient) -> None:
    send(node, [phone(i) for i in range(4)])
    rotate(node)
    with pytest.raises(IndexVersionError, match="still kept; retire it first"):
        rotate(node)
    assert states(node) == {1: "previous", 2: "active"}

    async def resume(db: Database, kek: Any) -> IndexRotationSummary | None:
        return await rotate_index(sessions=db.sessions, kek=kek, force="20", resume=True)

    assert offline(node, resume) is None  # nothing was left half-built
    retire(node)
    assert rotate(node).version == 3
    assert states(node) == {1: "retired", 2: "previous", 3: "active"}
    refresh(node)
    assert all(found(node, i) for i in range(4))
