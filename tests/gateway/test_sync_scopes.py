"""Scopes on every sync endpoint: `records:write` to change records, `records:read` to read them.

Each endpoint is called with a token carrying only the other scope (403, an RFC 9457 problem
naming the missing scope, an audited refusal, and nothing changed) and with a token carrying
only its own (served).
The record the calls name exists, so a refusal cannot be a 404 in disguise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from audit.entry import decode_entry
from gateway.errors import TYPE_PREFIX
from tests.gateway.conftest import NodeClient
from tests.gateway.test_sync_api import person, raw_rows

READ = "records:read"
WRITE = "records:write"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    needs: str
    ok: int
    body: bytes | None = None
    content_type: str | None = None

    def send(self, node: NodeClient, scope: str) -> httpx.Response:
        headers = node.auth(scope)
        if self.content_type:
            headers["Content-Type"] = self.content_type
        return node.http.request(self.method, self.path, content=self.body, headers=headers)


def _json(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


CALLS = [
    Call("PUT", "/v1/records/p-2", WRITE, 201, _json(person("p-2")), "application/json"),
    Call("DELETE", "/v1/records/p-1", WRITE, 200),
    Call(
        "POST",
        "/v1/records/bulk",
        WRITE,
        200,
        _json(person("p-3")) + b"\n",
        "application/x-ndjson",
    ),
    Call("GET", "/v1/records/p-1", READ, 200),
    Call("GET", "/v1/changes", READ, 200),
]
IDS = [f"{c.method} {c.path}" for c in CALLS]


@pytest.fixture
def holding(node: NodeClient) -> NodeClient:
    """The node holds p-1 (and only p-1)."""
    created = node.http.put("/v1/records/p-1", json=person("p-1"), headers=node.auth())
    assert created.status_code == 201, created.text
    return node


def stored(node: NodeClient) -> list[str]:
    return [r[0] for r in raw_rows(node, "SELECT record_id FROM records ORDER BY record_id")]


def fed(node: NodeClient) -> list[tuple[str, str]]:
    return [
        (str(r[0]), str(r[1]))
        for r in raw_rows(node, "SELECT record_id, op FROM changes ORDER BY seq")
    ]


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_a_token_without_the_endpoints_scope_is_refused_and_changes_nothing(
    holding: NodeClient, call: Call
) -> None:
    other = READ if call.needs == WRITE else WRITE
    before = (stored(holding), fed(holding))
    response = call.send(holding, other)
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == TYPE_PREFIX + "forbidden"
    assert problem["status"] == 403
    assert problem["title"]
    assert problem["detail"] == f"This call needs the scope(s): {call.needs}."
    assert "Okonkwo" not in response.text  # the record's family name
    assert (stored(holding), fed(holding)) == before
    # The refusal is in the audit log, naming the client that asked and why it was refused.
    log = holding.http.app.state.node.audit.log
    log.flush()
    last = decode_entry(log.entries(log.size() - 1, log.size())[0])
    assert (str(last.kind), last.purpose, last.decision) == (
        "auth_failure",
        "insufficient_scope",
        "denied",
    )
    assert last.actor is not None and last.actor.client_id == holding.client_id


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_a_token_with_only_the_endpoints_scope_is_served(holding: NodeClient, call: Call) -> None:
    response = call.send(holding, call.needs)
    assert response.status_code == call.ok, response.text
