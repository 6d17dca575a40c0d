"""Sign-in to the console: the built-in issuer's development page, the authorization-code grant
with PKCE S256, the auditor-only rule and the session cookie."""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient

from gateway.identity.issuer_login import CONSOLE_CLIENT_ID
from gateway.settings import Settings
from tests.console.conftest import build_console_app, seeded_node_settings, sign_in


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _authorize_params(settings: Settings, verifier: str, **overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": CONSOLE_CLIENT_ID,
        "redirect_uri": settings.node_url + "/console/auth/callback",
        "state": "s-" + secrets.token_hex(8),
        "nonce": "n-" + secrets.token_hex(8),
        "scope": "openid profile",
        "code_challenge": _challenge(verifier),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return params


def _code(http: TestClient, settings: Settings, verifier: str, user: str = "auditor.dpo") -> str:
    form = _authorize_params(settings, verifier) | {"user_id": user}
    response = http.post("/oauth/authorize", data=form, follow_redirects=False)
    assert response.status_code == 303
    location = urlparse(response.headers["location"])
    query = parse_qs(location.query)
    assert query["state"] == [form["state"]]
    assert query["iss"] == [settings.node_url]
    return query["code"][0]


def _exchange(http: TestClient, settings: Settings, code: str, verifier: str) -> object:
    return http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": CONSOLE_CLIENT_ID,
            "redirect_uri": settings.node_url + "/console/auth/callback",
        },
    )


def test_auditor_signs_in_through_the_development_issuer(console_http) -> None:
    http, _, _ = console_http
    landed = sign_in(http, "auditor.dpo")
    assert landed.status_code == 200
    assert str(landed.url).endswith("/console/")
    assert "Dana Price" in landed.text and "Access log" in landed.text
    set_cookie = next(
        r.headers["set-cookie"] for r in landed.history if "set-cookie" in r.headers
    ).lower()
    assert set_cookie.startswith("gateway_console=")
    assert "path=/console;" in set_cookie
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie


def test_console_pages_redirect_to_sign_in_and_api_answers_401(console_http) -> None:
    http, _, _ = console_http
    page = http.get("/console/integrity", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/console/login?next=%2Fconsole%2Fintegrity"
    api = http.get("/console/api/entries/0/bytes")
    assert api.status_code == 401
    assert api.headers["content-type"].startswith("application/problem+json")


def test_analyst_is_refused_and_the_refusal_is_audited(console_http) -> None:
    http, _, _ = console_http
    refused = sign_in(http, "analyst.msht")
    assert refused.status_code == 403
    assert "only for auditors" in refused.text
    assert http.get("/console/", follow_redirects=False).status_code == 303
    auditor = {"Authorization": "Bearer auditor-" + "x" * 32}
    failures = http.get("/v1/audit/entries?operation=auth_failure", headers=auditor).json()
    reasons = [e["entry"].get("purpose") for e in failures["entries"]]
    assert "console_not_auditor" in reasons
    actors = [e["entry"].get("actor", {}).get("user_id") for e in failures["entries"]]
    assert "analyst.msht" in actors


def test_code_needs_the_matching_pkce_verifier_and_works_once(console_http) -> None:
    http, settings, _ = console_http
    verifier = secrets.token_urlsafe(48)
    code = _code(http, settings, verifier)
    wrong = _exchange(http, settings, code, secrets.token_urlsafe(48))
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    # A failed attempt burns the code: a guessed verifier gets one try only.
    assert _exchange(http, settings, code, verifier).status_code == 400
    code = _code(http, settings, verifier)
    granted = _exchange(http, settings, code, verifier)
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["token_type"] == "Bearer" and body["id_token"] and body["access_token"]
    replay = _exchange(http, settings, code, verifier)
    assert replay.status_code == 400


def test_authorize_refuses_unknown_clients_redirects_and_plain_pkce(console_http) -> None:
    http, settings, _ = console_http
    verifier = secrets.token_urlsafe(48)
    cases = [
        {"client_id": "someone-else"},
        {"redirect_uri": "https://evil.example/callback"},
        {"code_challenge_method": "plain"},
        {"code_challenge": ""},
        {"response_type": "token"},
    ]
    for override in cases:
        params = _authorize_params(settings, verifier, **override)
        response = http.get("/oauth/authorize", params=params, follow_redirects=False)
        assert response.status_code == 400, override
        assert "location" not in response.headers


def test_development_sign_in_is_switched_off_in_production(tmp_path: Path) -> None:
    settings, _ = seeded_node_settings(tmp_path / "node", "http://127.0.0.1:8020")
    production = settings.model_copy(update={"environment": "production"})
    app = build_console_app(production)
    with TestClient(app, base_url=production.node_url) as http:
        verifier = secrets.token_urlsafe(48)
        params = _authorize_params(production, verifier)
        assert http.get("/oauth/authorize", params=params).status_code == 404
        posted = http.post("/oauth/authorize", data=params | {"user_id": "auditor.dpo"})
        assert posted.status_code == 404


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/v1/audit"])
def test_sign_in_never_redirects_outside_the_console(console_http, target: str) -> None:
    http, _, _ = console_http
    landed = sign_in(http, "auditor.dpo", start=f"/console/login?next={target}")
    assert str(landed.url).endswith("/console/")
