"""What an analyst must send with a search or a disclosure: a known `purpose`, a `justification`
and a `case_ref`, neither of them blank. A request without one is refused with 422 problem+json
whose `errors` point at the field, before anything is logged or any partner is asked."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.settings import Settings
from tests.federation.conftest import (
    Federation,
    RoutingTransport,
    member_for,
    node_settings,
    phone,
    running_federation,
    write_manifest,
)

HOME, PARTNER = "05", "20"
RECORD_ID = "ph-20-1"
GOOD: dict[str, Any] = {
    "purpose": "investigation",
    "justification": "Operation Kestrel: linked county line",
    "case_ref": "OP-KESTREL-1",
}


class WatchedRouting(RoutingTransport):
    """Routes partner calls as usual, noting the host and path of each."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.asked.append((request.url.host, request.url.path))
        return await super().handle_async_request(request)


def two_nodes(tmp_path: Path) -> list[Settings]:
    settings = [node_settings(tmp_path, force) for force in (HOME, PARTNER)]
    write_manifest(settings, [member_for(s) for s in settings])
    return settings


def log_sizes(fed: Federation) -> dict[str, int]:
    sizes = {}
    for force, running in fed.nodes.items():
        log = running.node.audit.log
        log.flush()
        sizes[force] = log.size()
    return sizes


def partner_calls(routing: WatchedRouting) -> list[tuple[str, str]]:
    return [(host, path) for host, path in routing.asked if path.startswith("/federation/v1/")]


Send = Callable[[Federation, dict[str, Any]], Awaitable[httpx.Response]]


async def send_search(fed: Federation, body: dict[str, Any]) -> httpx.Response:
    home = fed.nodes[HOME]
    payload = {**body, "phone": "07911 123456", "forces": [HOME, PARTNER]}
    return await home.http.post("/v1/search", json=payload, headers=home.analyst_headers())


async def send_disclose(fed: Federation, body: dict[str, Any]) -> httpx.Response:
    home = fed.nodes[HOME]
    return await home.http.post(
        f"/v1/records/{PARTNER}/{RECORD_ID}/disclose", json=body, headers=home.analyst_headers()
    )


ENDPOINTS: dict[str, Send] = {"search": send_search, "disclose": send_disclose}


def without(field: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != field}


def with_(field: str, value: Any) -> dict[str, Any]:
    return {**GOOD, field: value}


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("purpose-missing", without("purpose"), "/purpose"),
    ("purpose-unknown", with_("purpose", "curiosity"), "/purpose"),
    ("purpose-empty", with_("purpose", ""), "/purpose"),
    ("purpose-not-a-string", with_("purpose", ["investigation"]), "/purpose"),
    ("justification-missing", without("justification"), "/justification"),
    ("justification-empty", with_("justification", ""), "/justification"),
    ("justification-one-space", with_("justification", " "), "/justification"),
    ("justification-whitespace", with_("justification", " \t\n\u00a0 "), "/justification"),
    ("justification-null", with_("justification", None), "/justification"),
    ("case-ref-missing", without("case_ref"), "/case_ref"),
    ("case-ref-empty", with_("case_ref", ""), "/case_ref"),
    ("case-ref-blank", with_("case_ref", "   "), "/case_ref"),
    ("case-ref-tab", with_("case_ref", "\t"), "/case_ref"),
]


def run_against_federation(
    tmp_path: Path, work: Callable[[Federation, WatchedRouting], Awaitable[None]]
) -> None:
    settings = two_nodes(tmp_path)

    async def run() -> None:
        routing = WatchedRouting()
        async with running_federation(settings, routing=routing) as fed:
            await fed.nodes[PARTNER].load([phone(PARTNER, RECORD_ID, "+447911123456")])
            await work(fed, routing)

    asyncio.run(run())


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize(
    ("body", "pointer"),
    [pytest.param(body, pointer, id=name) for name, body, pointer in BAD_BODIES],
)
def test_a_request_without_a_valid_purpose_justification_or_case_ref_is_refused_unlogged(
    tmp_path: Path, endpoint: str, body: dict[str, Any], pointer: str
) -> None:
    """Each bad request is answered 422 problem+json with one error whose JSON pointer names the
    field; neither node's audit log grows and no partner is asked."""

    async def work(fed: Federation, routing: WatchedRouting) -> None:
        before = log_sizes(fed)
        asked_before = partner_calls(routing)
        response = await ENDPOINTS[endpoint](fed, body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["type"] == "urn:police-gateway:problem:validation-failed"
        assert problem["status"] == 422
        assert [error["pointer"] for error in problem["errors"]] == [pointer]
        assert all(error["in"] == "body" for error in problem["errors"])
        assert log_sizes(fed) == before
        assert partner_calls(routing) == asked_before

    run_against_federation(tmp_path, work)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_a_valid_request_is_logged_and_reaches_the_partner(tmp_path: Path, endpoint: str) -> None:
    """The control for the test above: the same request with all three fields valid (a
    justification with spaces around its words included) is answered, logged on both nodes and
    sent to the partner, so the checks there would see a request that got through."""

    async def work(fed: Federation, routing: WatchedRouting) -> None:
        before = log_sizes(fed)
        body = with_("justification", "  Operation Kestrel: linked county line  ")
        response = await ENDPOINTS[endpoint](fed, body)
        assert response.status_code == 200, response.text
        after = log_sizes(fed)
        assert after[HOME] > before[HOME]
        assert after[PARTNER] > before[PARTNER]
        assert (f"force-{PARTNER}.test", f"/federation/v1/{endpoint}") in partner_calls(routing)

    run_against_federation(tmp_path, work)


@pytest.mark.parametrize(
    ("terms", "pointers"),
    [
        pytest.param({"phone": "12", "name": "Aleksandr Ivanov"}, ["/phone"], id="phone"),
        pytest.param({"name": "Aleksandr Ivanov", "dob": "31/02/1990"}, ["/dob"], id="dob"),
        pytest.param({"name": "Aleksandr Ivanov", "postcode": "L1"}, ["/postcode"], id="district"),
        pytest.param({"name": "!!!", "vrm": "--"}, ["/vrm", "/name"], id="name-and-vrm"),
    ],
)
def test_a_search_term_that_gives_nothing_to_look_up_is_refused_unlogged(
    tmp_path: Path, terms: dict[str, Any], pointers: list[str]
) -> None:
    """A field that does not normalise to anything searched is refused (422 naming it), not
    dropped: dropping it would run a broader search than the one asked for, on every force."""

    async def work(fed: Federation, routing: WatchedRouting) -> None:
        home = fed.nodes[HOME]
        before = log_sizes(fed)
        response = await home.http.post(
            "/v1/search",
            json={**GOOD, **terms, "forces": [HOME, PARTNER]},
            headers=home.analyst_headers(),
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["type"] == "urn:police-gateway:problem:validation-failed"
        assert sorted(error["pointer"] for error in problem["errors"]) == sorted(pointers)
        assert log_sizes(fed) == before
        assert partner_calls(routing) == []

    run_against_federation(tmp_path, work)
