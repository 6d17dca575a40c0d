"""The search path's two reads (blind tags → record ids; ids → stored rows), on both databases.

Both statements are built once with expanding bind parameters. Here their answers are compared
with a plain reading of the whole tables for many random queries: several tags of one kind,
several kinds, a tag asked for under the wrong kind, tags nobody holds, and no ids at all.
"""

from __future__ import annotations

import json
import random
from typing import Any

import anyio
import pytest
from sqlalchemy import text

from gateway.records import repository
from schemas.examples import example_record
from tests.gateway.conftest import NodeClient

RECORDS = 40


def load(node: NodeClient) -> None:
    lines = []
    for n in range(RECORDS):
        kind = ("phone", "person", "vehicle")[n % 3]
        record = example_record(kind, id=f"rd-{n}", owner_force="20")
        if kind == "phone":
            record["body"]["number"] = f"+44791100{n:04d}"
        elif kind == "person":
            record["body"]["names"][0]["family_name"] = f"Family{n % 4}"
        else:
            record["body"]["vrm"] = f"AB{n % 5:02d}CDE"
        lines.append(json.dumps(record).encode())
    headers = {**node.auth(), "Content-Type": "application/x-ndjson"}
    report = node.http.post("/v1/records/bulk", content=b"\n".join(lines), headers=headers)
    assert report.json()["accepted"] == RECORDS, report.text


def run(node: NodeClient, work: Any) -> Any:
    db = node.http.app.state.node.db  # type: ignore[attr-defined]

    async def go() -> Any:
        return await db.run_sync(work)

    return anyio.run(go)


def stored_terms(node: NodeClient) -> list[tuple[str, str, bytes]]:
    """(record id, term kind, tag) of every stored blind-index term."""
    return run(
        node,
        lambda conn: [
            (r, k, bytes(t))
            for r, k, t in conn.execute(text("SELECT record_id, term_kind, tag FROM search_terms"))
        ],
    )


def test_prebuilt_reads_answer_as_a_plain_reading_of_the_tables(any_node: NodeClient) -> None:
    load(any_node)
    rows = run(
        any_node,
        lambda conn: {
            r[0]: tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
            for r in conn.execute(
                text(
                    "SELECT r.record_id, r.kind, r.version, r.document, r.data_key_id, "
                    "k.kek_version, k.wrapped, r.policy_attrs, r.class_key "
                    "FROM records r JOIN data_keys k ON k.record_id = r.record_id"
                )
            )
        },
    )
    assert len(rows) == RECORDS
    rng = random.Random(20261205)
    for _ in range(60):
        ids = [*rng.sample(sorted(rows), rng.randint(0, 8)), "rd-nobody"]
        stored = run(any_node, lambda conn, i=ids: repository.fetch_records_sync(conn, i))
        by_id = {s.record_id: s for s in stored}
        assert set(by_id) == set(ids) - {"rd-nobody"}
        for record_id, s in by_id.items():
            plain = rows[record_id]
            assert (s.kind, s.version, s.data_key_id, s.kek_version) == (
                plain[1],
                plain[2],
                plain[4],
                plain[5],
            )
            assert bytes(s.wrapped) == plain[6]
    assert run(any_node, lambda conn: repository.fetch_records_sync(conn, [])) == []


def test_candidate_reads_answer_as_a_plain_reading_of_the_tables(any_node: NodeClient) -> None:
    """`candidate_ids_sync`: records holding any of some tags, or every one of some tags of one
    kind, optionally among given ids; the database does the narrowing."""
    load(any_node)
    all_terms = stored_terms(any_node)
    held: dict[str, set[tuple[str, bytes]]] = {}
    for record_id, kind, tag in all_terms:
        held.setdefault(record_id, set()).add((kind, tag))
    by_kind: dict[str, list[bytes]] = {}
    for _, kind, tag in all_terms:
        if tag not in by_kind.setdefault(kind, []):
            by_kind[kind].append(tag)
    rng = random.Random(20261206)
    all_found = 0
    for _ in range(80):
        any_of = [(k, t) for _, k, t in rng.sample(all_terms, rng.randint(0, 3))]
        if any_of and rng.random() < 0.3:
            held_kind, held_tag = any_of[0]  # a held tag asked for under another kind
            any_of.append((next(k for k in sorted(by_kind) if k != held_kind), held_tag))
        kind = rng.choice([k for k, tags in by_kind.items() if len(tags) > 1])
        all_of = [(kind, t) for t in rng.sample(by_kind[kind], rng.randint(1, 2))]
        if rng.random() < 0.3:
            all_of.append((kind, rng.randbytes(16)))  # a tag nobody holds: nobody has all
        within = None if rng.random() < 0.5 else set(rng.sample(sorted(held), rng.randint(0, 12)))
        expected = {
            r
            for r, pairs in held.items()
            if (within is None or r in within)
            and (any(p in pairs for p in any_of) or set(all_of) <= pairs)
        }
        all_found += sum(1 for pairs in held.values() if set(all_of) <= pairs)
        got = run(
            any_node,
            lambda conn, a=any_of, b=all_of, w=within: repository.candidate_ids_sync(
                conn, a, b, within=w
            ),
        )
        assert got == expected
    assert all_found > 0  # the all-of reads were not all empty
    assert run(any_node, lambda conn: repository.candidate_ids_sync(conn, [], [])) == set()
    with pytest.raises(ValueError, match="one term kind"):
        run(
            any_node,
            lambda conn: repository.candidate_ids_sync(
                conn, [], [("dob", b"x" * 16), ("vrm", b"y" * 16)]
            ),
        )


def test_every_name_part_among_found_records_is_read_through_the_record_ids(
    node: NodeClient,
) -> None:
    """A name's all-of read among the records another field found goes through the record-id
    index, not through the parts' tags: a common part can be held by thousands of records, the
    records found by a date of birth are a handful. (SQLite cannot see the bound values, and
    chose the tag index when the kind was compared as a plain column.)"""
    load(node)
    tags = [t for _, k, t in stored_terms(node) if k == "name_part_phonetic"][:2]
    # A dozen found records: the cost SQLite guesses for an IN list grows with its length.
    found = [f"rd-{n}" for n in range(12)]
    params = {"kind": "name_part_phonetic", "tags": tags, "ids": found, "n": 2}

    def plan(conn: Any) -> list[str]:
        compiled = repository._IDS_ALL_WITHIN.compile(dialect=conn.dialect)
        expanded = compiled.construct_expanded_state(params)
        explain = conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {expanded.statement}", tuple(expanded.positional_parameters)
        )
        return [str(row[-1]) for row in explain]

    steps = run(node, plan)
    assert any("ix_search_terms_record_id" in step for step in steps), steps
    assert not any("ix_search_terms_lookup" in step for step in steps), steps


def test_ids_of_kinds_answer_as_a_plain_reading_of_the_records(
    any_node: NodeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ids_of_kinds_sync`, which narrows a search's candidates to the kinds asked for, read in
    several statements when the ids are many (here: a few per statement)."""
    monkeypatch.setattr(repository, "IDS_PER_READ", 7)
    load(any_node)
    kind_of = dict(
        run(any_node, lambda conn: list(conn.execute(text("SELECT record_id, kind FROM records"))))
    )
    rng = random.Random(20261206)
    for _ in range(30):
        ids = {*rng.sample(sorted(kind_of), rng.randint(0, 25)), "rd-nobody"}
        kinds = rng.sample(["phone", "person", "vehicle", "event"], rng.randint(1, 2))
        expected = {i for i in ids if kind_of.get(i) in kinds}
        got = run(any_node, lambda conn, i=ids, k=kinds: repository.ids_of_kinds_sync(conn, i, k))
        assert got == expected
