"""Security headers on every kind of response: data, errors (handler- and middleware-made), plain
text, NDJSON, HTML console pages, static assets, docs and public metadata."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.node import init_node
from gateway.security_headers import API_CSP, CONSOLE_CSP, DOCS_CSP, SIGN_IN_CSP
from gateway.settings import Settings
from schemas.examples import example_record
from tests.console.conftest import (  # noqa: F401 - fixture reused from the console suite
    Seeded,
    console_http,
    sign_in,
)
from tests.gateway.conftest import NodeClient, _running_node, make_settings


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeClient]:
    settings = make_settings(tmp_path_factory.mktemp("headers") / "node")
    init_node(settings)
    yield from _running_node(settings)


def assert_baseline(response: Any, csp: str) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    if csp == CONSOLE_CSP:  # the console's pages set their own policy; hold it to the same bar
        assert_strict(headers["content-security-policy"])
    else:
        assert headers["content-security-policy"] == csp


def assert_strict(policy: str) -> None:
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["default-src"] == "'self'"
    for name in ("script-src", "style-src"):
        assert directives.get(name, directives["default-src"]) == "'self'", policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert directives["base-uri"] == "'none'" and directives["frame-ancestors"] == "'none'"


def test_data_and_error_responses_of_the_api_carry_no_store_and_the_api_policy(
    node: NodeClient,
) -> None:
    write, read = node.auth("records:write"), node.auth("records:read")
    auditor = {"Authorization": f"Bearer {node.settings.auditor_token.get_secret_value()}"}
    record = example_record("person", id="hdr-1")
    node.http.put("/v1/records/hdr-1", json=record, headers=write)
    limit = node.settings.max_body_bytes
    answers = {
        "record read": node.http.get("/v1/records/hdr-1", headers=read),
        "record write": node.http.put("/v1/records/hdr-1", json=record, headers=write),
        "change feed": node.http.get("/v1/changes", headers=read),
        "token": node.http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(node.client_id, node.secret),
        ),
        "audit entries": node.http.get("/v1/audit/entries", headers=auditor),
        "audit export (ndjson)": node.http.get("/v1/audit/export", headers=auditor),
        "checkpoint (text)": node.http.get("/v1/audit/checkpoint"),
        "health": node.http.get("/healthz"),
        "openapi": node.http.get("/openapi.json"),
        "401": node.http.get("/v1/records/hdr-1"),
        "403": node.http.get("/v1/records/hdr-1", headers=node.auth("records:write")),
        "404 route": node.http.get("/no/such/route"),
        "404 record": node.http.get("/v1/records/none", headers=read),
        "405": node.http.patch("/v1/records/hdr-1", headers=read),
        "413 (middleware)": node.http.put(
            "/v1/records/big", content=b"x" * (limit + 1), headers=write
        ),
        "422": node.http.get("/v1/changes?limit=0", headers=read),
        "federation 401": node.http.post("/federation/v1/search", content=b"{}"),
    }
    for name, response in answers.items():
        assert response.headers.get("cache-control") == "no-store", name
        assert_baseline(response, API_CSP)


def test_public_metadata_keeps_its_own_cache_policy_and_docs_can_load_swagger(
    node: NodeClient,
) -> None:
    jwks = node.http.get("/oauth/jwks")
    if jwks.status_code == 200:
        assert jwks.headers["cache-control"].startswith("public")
        assert_baseline(jwks, API_CSP)
    docs = node.http.get("/docs")
    assert docs.status_code == 200
    assert_baseline(docs, DOCS_CSP)


def test_metrics_carry_the_headers_when_served(node: NodeClient) -> None:
    response = node.http.get("/metrics")
    if response.status_code == 404:
        pytest.skip("this build has no /metrics")
    assert response.headers["cache-control"] == "no-store"
    assert_baseline(response, API_CSP)


def test_console_pages_get_a_strict_policy_without_inline_script(
    console_http: tuple[TestClient, Settings, Seeded],  # noqa: F811 - the imported fixture
) -> None:
    http, _, seeded = console_http
    assert "'unsafe-inline'" not in CONSOLE_CSP and "'unsafe-eval'" not in CONSOLE_CSP
    signin = http.get("/console/")  # follows to the built-in issuer's sign-in page
    assert signin.status_code == 200 and "Choose a demo user" in signin.text
    assert_baseline(signin, SIGN_IN_CSP)
    sign_in(http, "auditor.dpo")
    pages = [
        "/console/",
        f"/console/entries/{seeded.phone_consult}",
        "/console/who?record_id=x",
        "/console/integrity",
        "/console/signals",
        "/console/charts",
        "/console/static/verify.js",
        "/console/static/console.css",
    ]
    for path in pages:
        response = http.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert response.headers["cache-control"] == "no-store", path
        assert_baseline(response, CONSOLE_CSP)
        if response.headers["content-type"].startswith("text/html"):
            # The strict policy holds because no page needs inline script or inline handlers.
            html = response.text
            assert "<script>" not in html and " onclick=" not in html and "javascript:" not in html
            for tag in html.split("<script")[1:]:
                opening = tag.split(">", 1)[0]
                assert "src=" in opening or 'type="application/json"' in opening, opening
