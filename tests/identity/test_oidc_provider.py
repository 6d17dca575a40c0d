"""A real, independent OpenID Connect provider (npm `oidc-provider`, tests/oidc) issues a JWT
access token; the node accepts it through the provider's discovery document and JWKS over HTTP.

Skipped when Node.js or tests/oidc/node_modules is missing, except under CI, where it fails
(`make oidc-deps` installs the pinned provider from its lockfile).
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gateway.federation.manifest import TrustedIssuer
from tests.conftest import IN_CI
from tests.gateway.conftest import NODE_URL
from tests.identity.conftest import (
    Authority,
    FederatedNode,
    build_app,
    manifest_of,
    member,
    prepare_node,
)

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
AUDIENCE = "urn:police-gateway:force-20"


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return "tests/oidc/node_modules is missing; run `make oidc-deps`"
    return None


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[dict[str, Any]]:
    """Start the provider on a free loopback port; yields its issuer and client credentials."""
    problem = _missing()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"the OIDC provider test is required under CI: {problem}")
        pytest.skip(problem)
    process = subprocess.Popen(
        ["node", str(OIDC_DIR / "provider.mjs")],
        cwd=OIDC_DIR,
        env={**os.environ, "OIDC_AUDIENCE": AUDIENCE, "OIDC_FORCE": "20"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        # Wait for the one line the provider prints once it listens (no fixed sleep).
        if not selector.select(timeout=30):
            pytest.fail("the OIDC provider did not start within 30 s")
        line = process.stdout.readline()
        if not line:
            stderr = process.stderr.read() if process.stderr else ""
            pytest.fail(f"the OIDC provider exited: {stderr[-2000:]}")
        yield json.loads(line)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _discover(issuer: str) -> dict[str, Any]:
    response = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    assert document["issuer"] == issuer
    return document


def _access_token(provider: dict[str, Any], token_endpoint: str) -> str:
    response = httpx.post(
        token_endpoint,
        data={"grant_type": "client_credentials", "scope": "search"},
        auth=(provider["client_id"], provider["client_secret"]),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    token: str = body["access_token"]
    assert token.count(".") == 2, "oidc-provider must issue a JWT access token"
    return token


@pytest.fixture
def node_trusting(
    tmp_path: Path, authority: Authority, oidc_provider: dict[str, Any]
) -> Iterator[tuple[FederatedNode, dict[str, Any]]]:
    settings = prepare_node(tmp_path, authority, manifest_of(1, member()))
    with TestClient(build_app(settings), base_url=NODE_URL, raise_server_exceptions=False) as http:
        yield FederatedNode(http=http, settings=settings, authority=authority), oidc_provider


@pytest.mark.parametrize("key_source", ["jwks_uri from discovery", "discovery at runtime"])
def test_node_accepts_a_token_from_an_independent_oidc_provider(
    node_trusting: tuple[FederatedNode, dict[str, Any]], key_source: str
) -> None:
    node, provider = node_trusting
    issuer = provider["issuer"]
    document = _discover(issuer)
    token = _access_token(provider, document["token_endpoint"])
    # Before the manifest trusts the provider, its token is refused.
    refused = node.probe(token)
    assert refused.status_code == 401
    assert node.auth_failure_reasons()[-1] == "issuer_untrusted"

    jwks_uri = document["jwks_uri"] if key_source == "jwks_uri from discovery" else None
    trusted = TrustedIssuer(issuer=issuer, audience=AUDIENCE, jwks_uri=jwks_uri)
    node.publish(manifest_of(2, member(issuers=[trusted])))
    response = node.probe(token)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "user_id": provider["client_id"],
        "force": "20",
        "roles": ["analyst"],
        "vetting": "NPPV2",
        "units": ["MSU"],
        "issuer": issuer,
    }


def test_tampered_provider_token_is_refused(
    node_trusting: tuple[FederatedNode, dict[str, Any]],
) -> None:
    import base64

    node, provider = node_trusting
    document = _discover(provider["issuer"])
    trusted = TrustedIssuer(
        issuer=provider["issuer"], audience=AUDIENCE, jwks_uri=document["jwks_uri"]
    )
    node.publish(manifest_of(2, member(issuers=[trusted])))
    header, payload, signature = _access_token(provider, document["token_endpoint"]).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["vetting"] = "DV"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = node.probe(f"{header}.{forged_payload}.{signature}")
    assert response.status_code == 401
    assert node.auth_failure_reasons()[-1] == "bad_signature"


def test_provider_token_for_another_audience_is_refused(
    node_trusting: tuple[FederatedNode, dict[str, Any]],
) -> None:
    node, provider = node_trusting
    document = _discover(provider["issuer"])
    trusted = TrustedIssuer(
        issuer=provider["issuer"], audience="urn:police-gateway:force-05", jwks_uri=None
    )
    node.publish(manifest_of(2, member(issuers=[trusted])))
    response = node.probe(_access_token(provider, document["token_endpoint"]))
    assert response.status_code == 401
    assert node.auth_failure_reasons()[-1] == "wrong_audience"
