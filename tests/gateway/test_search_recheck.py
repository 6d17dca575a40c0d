"""Candidates found by blind tag are decrypted and re-checked before anything is answered.

A blind tag is a truncated HMAC: two values can share one, by accident or because someone who
can write to the index table put it there. Here a record is given, straight in the
`search_terms` table, the very tags a searched value yields although it holds no such value.
The search must take it as a candidate (checked), open it, find the value absent and leave it
out: not among the hits, not among the matched or disclosed references, not counted in the
decision. On SQLite and on PostgreSQL, in hits and in records mode.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from gateway.keys.blind_index import blind_index_terms
from gateway.records.repository import search_terms
from gateway.search import service
from gateway.search.service import SearchTerms
from policies import Mode
from schemas.fields import IndexKind
from tests.gateway.conftest import NodeClient
from tests.gateway.test_search_service import analyst, context, load, person, phone, search

NUMBER = "+447911123456"
NAME = "Mohammed Khan"


def run(node: NodeClient, work: Any) -> Any:
    db = node.http.app.state.node.db

    async def go() -> Any:
        return await db.run_sync(work)

    return anyio.run(go)


def tags_of(node: NodeClient, index_kind: IndexKind, value: str) -> list[tuple[str, bytes]]:
    """(term kind, tag) of every blind term `value` yields under the node's active index key:
    what storage writes for it and what a search for it looks up."""
    keys = node.http.app.state.node.keys
    return [
        (term.term_kind, bytes.fromhex(term.tag_hex))
        for term in blind_index_terms(keys.index, index_kind, value, version=keys.index_version)
    ]


def stored_tags(node: NodeClient, record_id: str) -> set[tuple[str, bytes]]:
    statement = select(search_terms.c.term_kind, search_terms.c.tag).where(
        search_terms.c.record_id == record_id
    )
    return run(node, lambda conn: {(k, bytes(t)) for k, t in conn.execute(statement)})


def plant(node: NodeClient, record_id: str, tags: list[tuple[str, bytes]]) -> None:
    """Give a record blind tags it did not earn, as a colliding tag would."""
    version = node.http.app.state.node.keys.index_version
    rows = [
        {"record_id": record_id, "term_kind": kind, "tag": tag, "index_version": version}
        for kind, tag in tags
    ]

    def work(conn: Connection) -> None:
        conn.execute(insert(search_terms), rows)
        conn.commit()

    run(node, work)


def candidates(node: NodeClient, terms: SearchTerms) -> list[str]:
    """The record ids the blind-tag read yields for `terms`, before any re-check."""
    gateway_node = node.http.app.state.node
    per_field = service._wanted_tags(gateway_node, service._query_values(terms))
    stored, _ = run(node, lambda conn: service._read_candidates(conn, per_field))
    return sorted(row.record_id for row in stored)


def assert_only(answer: service.LocalAnswer, record_id: str) -> None:
    assert [h.record_id for h in answer.hits] == [record_id]
    assert [r.record_id for r in answer.matched] == [record_id]
    # One record decided on: the planted ones never reach policy.
    assert sum(int(part.split(":")[1]) for part in answer.decision.split(",")) == 1
    assert not answer.truncated


@pytest.fixture
def planted_phone(any_node: NodeClient) -> NodeClient:
    """ph-true holds the number; ph-other holds another number and p-none no number at all,
    yet both are given the number's tag."""
    load(
        any_node,
        [
            phone("ph-true", NUMBER),
            phone("ph-other", "07912 345678"),
            person("p-none", "Jane", "Smith", "1990-04-01"),
        ],
    )
    tags = tags_of(any_node, IndexKind.PHONE, NUMBER)
    assert tags and set(tags) <= stored_tags(any_node, "ph-true")  # as storage computes them
    plant(any_node, "ph-other", tags)
    plant(any_node, "p-none", tags)
    return any_node


@pytest.mark.parametrize("spelling", [NUMBER, "07911 123456"])
def test_a_planted_phone_tag_finds_a_candidate_but_never_a_hit(
    planted_phone: NodeClient, spelling: str
) -> None:
    node = planted_phone
    terms = SearchTerms(phone=spelling)
    assert candidates(node, terms) == ["p-none", "ph-other", "ph-true"]
    hits = search(node, terms, analyst("20"), context(Mode.HITS))
    assert_only(hits, "ph-true")
    assert hits.disclosed == []
    records = search(node, terms, analyst("20"), context(Mode.RECORDS))
    assert_only(records, "ph-true")
    assert [r.record_id for r in records.disclosed] == ["ph-true"]
    assert records.hits[0].record["body"]["number"] == NUMBER


def test_a_planted_phone_tag_does_not_survive_narrowing_by_kind(planted_phone: NodeClient) -> None:
    """Asking for phone records keeps the person out; the other phone is still re-checked."""
    terms = SearchTerms(phone=NUMBER, kinds=("phone",))
    answer = search(planted_phone, terms, analyst("20"), context(Mode.RECORDS))
    assert_only(answer, "ph-true")


@pytest.fixture
def planted_name(any_node: NodeClient) -> NodeClient:
    """p-true is Mohammed Khan (given and family name, each indexed on its own). p-other (Jane
    Smith, the same date of birth) is given the whole name's tags, exact and phonetic, which
    make a candidate on their own. ph-none (a phone record, no name at all) and p-half (Ali Khan,
    who shares one part) are given the tags of each part and its phonetic code, which make a
    candidate when every part is held."""
    load(
        any_node,
        [
            person("p-true", "Mohammed", "Khan", "1990-04-01"),
            person("p-other", "Jane", "Smith", "1990-04-01"),
            person("p-half", "Ali", "Khan", "1990-04-01"),
            phone("ph-none", "07912 345678"),
        ],
    )
    tags = tags_of(any_node, IndexKind.NAME, NAME)
    assert {kind for kind, _ in tags} == {
        "name_full",
        "name_full_phonetic",
        "name_part",
        "name_part_phonetic",
    }
    whole = [(kind, tag) for kind, tag in tags if kind.startswith("name_full")]
    parts = [(kind, tag) for kind, tag in tags if kind.startswith("name_part")]
    assert set(parts) <= stored_tags(any_node, "p-true")  # as storage computes them
    plant(any_node, "p-other", whole)
    plant(any_node, "ph-none", parts)
    plant(any_node, "p-half", parts)
    return any_node


@pytest.mark.parametrize(
    "terms",
    [
        SearchTerms(name=NAME),
        SearchTerms(name="Muhammad Khan"),  # found by the phonetic tags alone
        SearchTerms(name=NAME, dob="1990-04-01"),  # p-other's date of birth does match
    ],
    ids=["exact", "phonetic", "with-dob"],
)
def test_a_planted_name_tag_finds_a_candidate_but_never_a_hit(
    planted_name: NodeClient, terms: SearchTerms
) -> None:
    node = planted_name
    planted = ["p-half", "p-other"] if terms.dob else ["p-half", "p-other", "ph-none"]
    assert candidates(node, terms) == sorted([*planted, "p-true"])
    hits = search(node, terms, analyst("20"), context(Mode.HITS))
    assert_only(hits, "p-true")
    records = search(node, terms, analyst("20"), context(Mode.RECORDS))
    assert_only(records, "p-true")
    assert records.hits[0].record["body"]["names"][0]["family_name"] == "Khan"
