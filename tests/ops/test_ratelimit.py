"""Rate limits per force system, per analyst and per address: 429 problem+json + Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from gateway.app import create_app
from gateway.identity.issuer import mint_analyst_token
from gateway.node import init_node
from gateway.settings import Settings
from tests.federation.conftest import member_for, node_settings, running_federation, write_manifest
from tests.gateway.conftest import NODE_URL, make_settings, register_client


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = make_settings(
        tmp_path / "node",
        rate_limit_client="3/minute",
        rate_limit_anonymous="4/minute",
    )
    init_node(settings)
    with TestClient(create_app(settings), base_url=NODE_URL) as http:
        yield http, settings


def token_for(http: TestClient, client_id: str, secret: str) -> dict[str, str]:
    response = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def assert_rate_limited(response: object) -> None:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    body = response.json()
    assert body["type"] == "urn:police-gateway:problem:rate-limited"
    assert body["retry_after"] == retry_after
    assert body["request_id"] == response.headers["x-request-id"]


def test_each_force_system_has_its_own_bucket(limited: tuple[TestClient, Settings]) -> None:
    http, settings = limited
    first = register_client(settings, "rms-a", ["records:read"])
    second = register_client(settings, "rms-b", ["records:read"])
    # Token requests carry no bearer token: they count against the address (2 of its 4).
    headers_a = token_for(http, *first)
    headers_b = token_for(http, *second)

    for _ in range(3):
        assert http.get("/v1/records/p-none", headers=headers_a).status_code == 404
    assert_rate_limited(http.get("/v1/records/p-none", headers=headers_a))
    # The other system is unaffected, and so is the address's anonymous budget.
    assert http.get("/v1/records/p-none", headers=headers_b).status_code == 404
    assert http.get("/v1/records/p-none").status_code == 401


def test_forged_tokens_do_not_buy_fresh_buckets(limited: tuple[TestClient, Settings]) -> None:
    http, _settings = limited
    # Unverifiable tokens with different contents all count against the caller's address.
    statuses = [
        http.get("/v1/records/p-1", headers={"Authorization": f"Bearer forged.{n}.sig"}).status_code
        for n in range(5)
    ]
    assert statuses == [401, 401, 401, 401, 429]
    assert_rate_limited(http.get("/v1/records/p-1", headers={"Authorization": "Bearer x.y.z"}))


def test_health_and_metrics_are_never_limited(limited: tuple[TestClient, Settings]) -> None:
    http, _settings = limited
    for _ in range(4):
        http.get("/v1/records/p-1")
    assert http.get("/v1/records/p-1").status_code == 429
    for _ in range(10):
        assert http.get("/healthz").status_code == 200
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    assert 'gateway_rate_limited_requests_total{caller="anonymous"} 1.0' in metrics.text
    assert 'method="GET",route="/v1/records/{record_id}",status="429"' in metrics.text


def test_limits_can_be_switched_off(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "node", rate_limit_enabled=False, rate_limit_anonymous="1/minute"
    )
    init_node(settings)
    with TestClient(create_app(settings), base_url=NODE_URL) as http:
        assert [http.get("/v1/records/p-1").status_code for _ in range(3)] == [401] * 3


def test_each_analyst_has_their_own_bucket(tmp_path: Path) -> None:
    settings = node_settings(tmp_path, "05", rate_limit_analyst="2/minute")
    write_manifest([settings], [member_for(settings)])
    body = {
        "purpose": "investigation",
        "justification": "Operation Kestrel: linked county line",
        "case_ref": "OP-KESTREL-1",
        "mode": "hits",
        "phone": "+447911123456",
    }

    def bearer(user_id: str) -> dict[str, str]:
        token = mint_analyst_token(settings, user_id=user_id, roles=["analyst"], vetting="NPPV2")
        return {"Authorization": f"Bearer {token}"}

    async def run() -> None:
        async with running_federation([settings]) as fed:
            http = fed.nodes["05"].http
            alice, bob = bearer("analyst-alice"), bearer("analyst-bob")
            for _ in range(2):
                assert (await http.post("/v1/search", json=body, headers=alice)).status_code == 200
            # A new token for the same analyst is the same bucket: the subject is verified.
            refused = await http.post("/v1/search", json=body, headers=bearer("analyst-alice"))
            assert_rate_limited(refused)
            assert (await http.post("/v1/search", json=body, headers=bob)).status_code == 200

    asyncio.run(run())


@pytest.mark.parametrize("text", ["", "lots", "10/fortnight", "5 per"])
def test_a_malformed_limit_stops_the_node_from_configuring(tmp_path: Path, text: str) -> None:
    with pytest.raises(ValidationError):
        make_settings(tmp_path, rate_limit_client=text)
