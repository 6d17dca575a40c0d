"""The bulk-load fast paths give exactly what the plain paths give: the report built without
the response model, blind terms shared across a batch, the level-by-level field walk."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text

from gateway.db import Database
from gateway.keys.blind_index import IndexKeyring
from gateway.keys.local import LocalKeyFileProvider, init_local_keyfile
from gateway.records import protection, repository, service
from gateway.records.payloads import BulkResult
from gateway.records.protection import IndexView, NodeKeys, index_terms, protect_record
from gateway.records.service import BulkReport, LineReport
from gateway.settings import Settings
from gateway.synth import iter_force_records
from schemas import parse_record
from schemas.examples import example_record
from tests.gateway.conftest import NodeClient

FORCE = "05"


def _records(count: int) -> list[dict[str, Any]]:
    out = []
    for raw in iter_force_records(FORCE, forces=[FORCE], records=count, seed=11):
        record = parse_record(raw).model_dump(mode="json")
        record["version"] = 1
        out.append(record)
    return out


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[NodeKeys]:
    init_local_keyfile(tmp_path / "kek.json")
    kek = LocalKeyFileProvider(tmp_path / "kek.json")
    node_keys = NodeKeys(FORCE, kek, IndexKeyring(bytes(range(32)), FORCE))
    # Two writable versions, as during a blind-index rotation.
    node_keys.view = IndexView(
        active=1,
        writable=(1, 2),
        rings={1: node_keys.index, 2: IndexKeyring(bytes(range(1, 33)), FORCE)},
    )
    yield node_keys
    kek.close()


def test_report_json_equals_the_response_model_dump() -> None:
    report = BulkReport(accepted=2, rejected=2, created=1, unchanged=1)
    report.lines = [
        LineReport(line=1, status="accepted", record_id="a", version=1, outcome="created"),
        LineReport(
            line=2,
            status="rejected",
            errors=({"pointer": "/grading/conditions", "detail": "required"},),
        ),
        LineReport(line=3, status="accepted", record_id="b", version=4, outcome="unchanged"),
        LineReport(
            line=5,
            status="rejected",
            record_id="c",
            errors=({"pointer": "/id", "detail": "duplicate"}, {"pointer": "", "detail": "x"}),
        ),
    ]
    for atomic, committed in ((False, True), (True, False)):
        report.atomic, report.committed = atomic, committed
        fast = report.as_json()
        assert fast == BulkResult.model_validate(fast).model_dump(mode="json")


def _expand_reference(
    data: Any, tokens: tuple[str, ...], pointer: str = ""
) -> Iterator[tuple[Any, Any, str]]:
    """The recursive walk the level-by-level one replaced."""
    head, rest = tokens[0], tokens[1:]
    if head == "*":
        if not isinstance(data, list):
            return
        items: Iterable[tuple[Any, Any]] = enumerate(data)
    else:
        if not isinstance(data, dict) or head not in data:
            return
        items = ((head, data[head]),)
    for key, value in items:
        here = f"{pointer}/{key}"
        if not rest:
            yield data, key, here
        elif value is not None:
            yield from _expand_reference(value, rest, here)


def test_field_walk_equals_the_recursive_walk() -> None:
    odd: list[Any] = [
        {"body": {"names": [{"given_names": "A"}, None, {"x": 1}, {"given_names": None}]}},
        {"body": {"names": "not a list"}},
        {"body": None},
        {"body": {"deal_lines": [{"number": "1"}, {"number": "2"}]}},
        [],
    ]
    samples = [*_records(300), *odd]
    tokens_seen = {
        target.tokens
        for kind in {r["kind"] for r in samples if isinstance(r, dict) and "kind" in r}
        for target in protection._protection_plan(kind)
    }
    tokens_seen |= {("body", "names", "*", "given_names"), ("body", "deal_lines", "*", "number")}
    for record in samples:
        for tokens in tokens_seen:
            fast = [(id(p), k, ptr) for p, k, ptr in protection._expand(record, tokens)]
            slow = [(id(p), k, ptr) for p, k, ptr in _expand_reference(record, tokens)]
            assert fast == slow


def test_terms_shared_across_a_batch_equal_terms_computed_alone(keys: NodeKeys) -> None:
    records = _records(400)
    records += [dict(r, id=r["id"] + "-again") for r in records[:100]]  # values recur
    memo: protection.TermMemo = {}
    for record in records:
        alone = protect_record(record, keys)
        shared = protect_record(record, keys, memo=memo)
        assert shared.terms == alone.terms
        assert shared.terms == index_terms(record, keys.view, keys.view.writable)
        assert index_terms(record, keys.view, (2,), memo=memo) == index_terms(
            record, keys.view, (2,)
        )
    assert memo  # the batch did share terms


def test_the_startup_heap_is_frozen_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(service, "_startup_heap_frozen", False)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    service.freeze_startup_heap()
    service.freeze_startup_heap()
    assert calls == ["freeze"]


# --- chunks stored while the next ones are parsed --------------------------------------------


def _person(record_id: str, force: str = "20") -> dict[str, Any]:
    return example_record("person", id=record_id, owner_force=force)


def _ndjson(items: list[Any]) -> bytes:
    return b"".join((i if isinstance(i, bytes) else json.dumps(i).encode()) + b"\n" for i in items)


def _stored_ids(node: NodeClient) -> set[str]:
    async def read() -> set[str]:
        async with node.http.app.state.node.db.sessions() as session:
            rows = await session.execute(text("SELECT record_id FROM records"))
            return {str(r[0]) for r in rows}

    return node.http.portal.call(read)  # type: ignore[union-attr,no-any-return]


def test_many_chunks_report_every_line_in_order(
    any_node: NodeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "BULK_CHUNK", 3)
    node = any_node
    headers = {**node.auth(), "Content-Type": "application/x-ndjson"}
    items: list[Any] = [_person(f"p-{i}") for i in range(11)]
    items[4] = b"{not json"
    items[8] = _person("p-1")  # duplicate of line 2
    items.insert(6, _person("p-x", force="05"))
    report = node.http.post("/v1/records/bulk", content=_ndjson(items), headers=headers).json()
    assert [line["line"] for line in report["lines"]] == list(range(1, 13))
    assert (report["accepted"], report["rejected"], report["created"]) == (9, 3, 9)
    rejected = [line["line"] for line in report["lines"] if line["status"] == "rejected"]
    assert rejected == [5, 7, 10]
    assert _stored_ids(node) == {f"p-{i}" for i in range(11) if i not in (4, 8)}
    again = node.http.post("/v1/records/bulk", content=_ndjson(items), headers=headers).json()
    assert again["unchanged"] == 9 and again["created"] == 0


def test_atomic_upload_over_many_chunks_rolls_back_every_chunk(
    any_node: NodeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "BULK_CHUNK", 2)
    node = any_node
    headers = {**node.auth(), "Content-Type": "application/x-ndjson"}
    items: list[Any] = [_person(f"a-{i}") for i in range(9)]
    items.append(b"[]")  # the last line is bad: the seven chunks before it are undone
    report = node.http.post(
        "/v1/records/bulk?atomic=true", content=_ndjson(items), headers=headers
    ).json()
    assert report["committed"] is False and report["accepted"] == 0
    assert [line["line"] for line in report["lines"]] == [10]
    assert _stored_ids(node) == set()


def test_a_chunk_that_fails_to_store_fails_the_upload_after_earlier_chunks_committed(
    node: NodeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "BULK_CHUNK", 3)
    real = service.store_records
    calls = 0

    async def failing_second_chunk(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("database went away")
        return await real(**kwargs)

    monkeypatch.setattr(service, "store_records", failing_second_chunk)
    headers = {**node.auth(), "Content-Type": "application/x-ndjson"}
    items = [_person(f"f-{i}") for i in range(10)]
    response = node.http.post("/v1/records/bulk", content=_ndjson(items), headers=headers)
    assert response.status_code == 500
    assert calls == 2  # nothing was stored after the failed chunk
    assert _stored_ids(node) == {"f-0", "f-1", "f-2"}  # the first chunk had committed


# --- inserts through the driver store what SQLAlchemy's inserts store --------------------------


def test_driver_inserts_store_the_same_values_as_sqlalchemy_inserts(
    any_backend_settings: Settings,
) -> None:
    now = datetime(2026, 11, 28, 21, 3, 46, 123456, tzinfo=UTC)
    record_row = {
        "kind": "person",
        "schema_version": "1",
        "version": 3,
        "classification_rank": 2,
        "handling_code": "P",
        "policy_attrs": {"kind": "person", "subject_categories": ["VICTIM"], "é": None},
        "class_key": "c" * 32,
        "next_review": date(2031, 4, 19),
        "document": {"id": "x", "body": {"names": ["gw1.k.abc"], "n": 1.5, "t": True}},
        "data_key_id": "k" * 16,
        "content_sha256": "0" * 64,
        "index_version": 2,
        "created_at": now,
        "updated_at": now,
    }
    cases = [
        (repository.records, "record_id", record_row),
        (
            repository.changes,
            "record_id",
            {"version": 3, "op": "upsert", "reason": None, "at": now},
        ),
        (
            repository.search_terms,
            "record_id",
            {"term_kind": "name_part", "tag": bytes(range(16)), "index_version": 2},
        ),
    ]

    async def run() -> None:
        db = Database(any_backend_settings.resolved_database_url)
        try:
            async with db.sessions() as session:
                for table, key, values in cases:
                    columns = (key, *values)
                    await repository._insert_many(
                        session, table, columns, [("via-driver", *values.values())]
                    )
                    await session.execute(insert(table), [{key: "via-sqlalchemy", **values}])
                    stored = {}
                    for which in ("via-driver", "via-sqlalchemy"):
                        # Raw stored values, as the driver returns them (untyped text()
                        # columns: no result processing). Names are this test's constants.
                        query = text(
                            f"SELECT {', '.join(values)} FROM {table.name} WHERE {key} = :which"
                        )
                        result = await session.execute(query, {"which": which})
                        stored[which] = [tuple(row) for row in result.all()]
                    assert stored["via-driver"] == stored["via-sqlalchemy"], table.name
                    assert len(stored["via-driver"]) == 1
                await session.rollback()
        finally:
            await db.dispose()

    asyncio.run(run())
