"""Bulk upload limits: how many lines one upload may hold, and how many bytes its body may be.

Both are answered 413 with an RFC 9457 problem, on SQLite and on PostgreSQL. The limits are
lowered here (the line limit by patching `MAX_BULK_LINES`, the byte limit through the node's
`max_bulk_bytes` setting) and chunks made two records long (`BULK_CHUNK`), so that what an
upload cut short leaves behind can be seen with a handful of records:

- non-atomic: each chunk commits on its own, so every whole chunk gathered before the upload
  was cut is stored (and stays stored); the chunk still being gathered is not;
- atomic: nothing at all.

Lines are parsed in the node process here: an upload shorter than a worker chunk (500 lines)
always is, and the node with the lowered byte limit has no worker processes. With workers, lines
are handed over 500 at a time, and the chunks still with the workers when a body is cut are
dropped, so fewer whole chunks may be stored; never a part of one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.errors import TYPE_PREFIX
from gateway.node import init_node
from gateway.records import endpoints, service
from tests.gateway.conftest import NODE_URL, NodeClient, _running_node, make_settings
from tests.gateway.test_sync_api import person, raw_rows

CHUNK = 2
LINES = [json.dumps(person(f"p-{n}")).encode() + b"\n" for n in range(1, 6)]
assert len({len(line) for line in LINES}) == 1  # ids of one length: lines of one length
# Three lines fit in a body, a fourth does not.
BYTE_LIMIT = 3 * len(LINES[0]) + 10
BULK = "/v1/records/bulk"


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "BULK_CHUNK", CHUNK)


@pytest.fixture(params=["sqlite", "postgres"])
def limited_node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NodeClient]:
    """A running node whose bulk uploads may be at most `BYTE_LIMIT` bytes, on each backend,
    parsing every line in the node process."""
    overrides: dict[str, Any] = {"max_bulk_bytes": BYTE_LIMIT, "bulk_workers": 0}
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database")
        overrides["database_url"] = url.replace("postgresql://", "postgresql+psycopg://")
    settings = make_settings(tmp_path / "node", **overrides)
    init_node(settings)
    yield from _running_node(settings)


def stored(node: NodeClient) -> list[str]:
    """Ids of the records the node holds, read from its database."""
    return [r[0] for r in raw_rows(node, "SELECT record_id FROM records ORDER BY record_id")]


def fed(node: NodeClient) -> list[str]:
    """Ids in the change feed, in order."""
    page = node.http.get("/v1/changes", headers=node.auth()).json()
    return [change["record_id"] for change in page["changes"]]


def upload_headers(node: NodeClient) -> dict[str, str]:
    return {**node.auth("records:write"), "Content-Type": "application/x-ndjson"}


def assert_problem_413(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == TYPE_PREFIX + "payload-too-large"
    assert problem["title"] == "Request body too large"
    assert problem["status"] == 413
    assert problem["detail"] == detail


def streamed_upload(
    node: NodeClient, lines: list[bytes], *, atomic: bool, declare_length: bool = False
) -> httpx.Response:
    """POST the lines as a streamed body, one line a message, on the node's own event loop:
    without a Content-Length (chunked, as a force system streaming an export sends it) unless
    `declare_length`.

    (The test client hands the app the whole body at once; here the app reads it as it arrives,
    and the size limit counts the bytes as they come.)"""
    headers = upload_headers(node)
    if declare_length:
        headers["Content-Length"] = str(sum(len(line) for line in lines))
    url = f"{BULK}?atomic=true" if atomic else BULK

    async def body() -> AsyncIterator[bytes]:
        for line in lines:
            yield line

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=node.http.app)
        async with httpx.AsyncClient(transport=transport, base_url=NODE_URL) as client:
            return await client.post(url, content=body(), headers=headers)

    portal = node.http.portal
    assert portal is not None
    response: httpx.Response = portal.call(post)
    return response


# --- how many lines ----------------------------------------------------------------------------


def test_an_upload_of_exactly_the_line_limit_is_accepted(
    any_node: NodeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoints, "MAX_BULK_LINES", 3)
    body = b"".join(LINES[:3]) + b"\n\n"  # blank lines are not records and do not count
    response = any_node.http.post(BULK, content=body, headers=upload_headers(any_node))
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 3
    assert stored(any_node) == ["p-1", "p-2", "p-3"]


def test_a_line_past_the_limit_is_413_and_whole_chunks_before_it_stay_stored(
    any_node: NodeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five lines, at most three: lines 1-2 form a chunk, committed; line 3 waits in the next
    chunk when line 4 is refused, and is never stored; lines 4 and 5 are not read."""
    monkeypatch.setattr(endpoints, "MAX_BULK_LINES", 3)
    response = any_node.http.post(BULK, content=b"".join(LINES), headers=upload_headers(any_node))
    assert_problem_413(response, "A bulk upload holds at most 3 lines.")
    assert stored(any_node) == ["p-1", "p-2"]
    assert fed(any_node) == ["p-1", "p-2"]


def test_a_line_past_the_limit_of_an_atomic_upload_stores_nothing(
    any_node: NodeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoints, "MAX_BULK_LINES", 3)
    response = any_node.http.post(
        f"{BULK}?atomic=true", content=b"".join(LINES), headers=upload_headers(any_node)
    )
    assert_problem_413(response, "A bulk upload holds at most 3 lines.")
    assert stored(any_node) == []
    assert fed(any_node) == []


# --- how many bytes ----------------------------------------------------------------------------

SIZE_DETAIL = f"The request body exceeds the limit of {BYTE_LIMIT} bytes for this route."


def test_a_body_of_exactly_the_byte_limit_is_accepted(limited_node: NodeClient) -> None:
    body = b"".join(LINES[:3])
    body += b"\n" * (BYTE_LIMIT - len(body))
    assert len(body) == BYTE_LIMIT
    response = limited_node.http.post(BULK, content=body, headers=upload_headers(limited_node))
    assert response.status_code == 200, response.text
    assert stored(limited_node) == ["p-1", "p-2", "p-3"]


def test_a_declared_length_over_the_byte_limit_is_413_before_any_line_is_read(
    limited_node: NodeClient,
) -> None:
    """The body's Content-Length is over the limit: it is refused unread, so nothing is stored,
    not even the lines that would have fitted (a non-atomic upload, streamed line by line)."""
    response = streamed_upload(limited_node, LINES, atomic=False, declare_length=True)
    assert_problem_413(response, SIZE_DETAIL)
    assert stored(limited_node) == []
    assert fed(limited_node) == []


def test_a_streamed_body_past_the_byte_limit_is_413_and_whole_chunks_before_it_stay_stored(
    limited_node: NodeClient,
) -> None:
    """No Content-Length: the bytes are counted as they arrive. Lines 1-2 form a chunk,
    committed; line 3 waits in the next chunk when line 4 takes the body past the limit, and is
    never stored."""
    response = streamed_upload(limited_node, LINES, atomic=False)
    assert_problem_413(response, SIZE_DETAIL)
    assert stored(limited_node) == ["p-1", "p-2"]
    assert fed(limited_node) == ["p-1", "p-2"]


def test_a_streamed_body_past_the_byte_limit_of_an_atomic_upload_stores_nothing(
    limited_node: NodeClient,
) -> None:
    response = streamed_upload(limited_node, LINES, atomic=True)
    assert_problem_413(response, SIZE_DETAIL)
    assert stored(limited_node) == []
    assert fed(limited_node) == []


def test_a_streamed_body_within_the_byte_limit_is_accepted(limited_node: NodeClient) -> None:
    response = streamed_upload(limited_node, LINES[:3], atomic=False)
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 3
    assert stored(limited_node) == ["p-1", "p-2", "p-3"]
