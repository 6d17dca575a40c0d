"""The node's built-in issuer: its key, discovery and JWKS endpoints, `gateway token`, and the
switch that turns it off."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet
from typer.testing import CliRunner

from gateway.identity.issuer import (
    IssuerDisabled,
    IssuerError,
    ensure_issuer_key,
    issuer_key_path,
    mint_analyst_token,
)
from gateway.identity.token_cli import token as token_command
from tests.gateway.conftest import NODE_URL
from tests.identity.conftest import (
    Authority,
    FederatedNode,
    build_app,
    manifest_of,
    member,
    prepare_node,
)


def test_issuer_key_is_private_to_the_node_and_created_once(federated_node: FederatedNode) -> None:
    path = issuer_key_path(federated_node.settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    assert ensure_issuer_key(federated_node.settings) is False
    assert path.read_bytes() == before


def test_discovery_document_names_the_issuer_and_its_endpoints(
    federated_node: FederatedNode,
) -> None:
    response = federated_node.http.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    assert doc["issuer"] == NODE_URL
    assert doc["jwks_uri"] == f"{NODE_URL}/oauth/jwks"
    assert doc["authorization_endpoint"] == f"{NODE_URL}/oauth/authorize"
    assert doc["token_endpoint"] == f"{NODE_URL}/oauth/token"
    assert "S256" in doc["code_challenge_methods_supported"]


def test_jwks_verifies_minted_tokens_and_holds_no_private_key(
    federated_node: FederatedNode,
) -> None:
    jwks = federated_node.http.get("/oauth/jwks").json()
    assert all("d" not in key for key in jwks["keys"])
    token = mint_analyst_token(
        federated_node.settings,
        user_id="demo.analyst",
        roles=["analyst"],
        vetting="NPPV2",
        units=["MSU"],
        extra_claims={"name": "Demo Analyst"},
    )
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["Ed25519"])
    claims = decoded.claims
    assert decoded.header["kid"] == jwks["keys"][0]["kid"]
    assert claims["iss"] == claims["aud"] == NODE_URL
    assert claims["sub"] == "demo.analyst"
    assert claims["force"] == "20"
    assert claims["roles"] == ["analyst"] and claims["units"] == ["MSU"]
    assert claims["vetting"] == "NPPV2" and claims["name"] == "Demo Analyst"
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]
    assert len(claims["jti"]) >= 16


def test_issuer_key_is_not_the_node_signing_key(federated_node: FederatedNode) -> None:
    node = federated_node.http.app.state.node  # type: ignore[attr-defined]
    jwks = federated_node.http.get("/oauth/jwks").json()
    assert jwks["keys"][0]["kid"] != node.signing_key.kid


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vetting": "NPPV9"}, "unknown vetting level"),
        ({"ttl_seconds": 0}, "ttl"),
        ({"extra_claims": {"force": "01"}}, "may not override"),
        ({"user_id": " "}, "user id"),
    ],
)
def test_minting_refuses_bad_requests(
    federated_node: FederatedNode, kwargs: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {"user_id": "u", "roles": ["analyst"], "vetting": "NPPV2"}
    values.update(kwargs)
    with pytest.raises(IssuerError, match=message):
        mint_analyst_token(federated_node.settings, **values)  # type: ignore[arg-type]


def test_switched_off_issuer_publishes_nothing_and_its_tokens_stop_working(
    tmp_path: Path, authority: Authority
) -> None:
    settings = prepare_node(tmp_path, authority, manifest_of(1, member()))
    token = mint_analyst_token(settings, user_id="u", roles=["analyst"], vetting="NPPV2")
    off = settings.model_copy(update={"builtin_issuer": False})
    with TestClient(build_app(off), base_url=NODE_URL) as http:
        assert http.get("/.well-known/openid-configuration").status_code == 404
        assert http.get("/oauth/jwks").status_code == 404
        node = FederatedNode(http=http, settings=off, authority=authority)
        response = node.probe(token)
        assert response.status_code == 401
        assert node.auth_failure_reasons() == ["issuer_untrusted"]
    with pytest.raises(IssuerDisabled):
        mint_analyst_token(off, user_id="u", roles=["analyst"], vetting="NPPV2")


def test_production_default_creates_no_issuer_key(tmp_path: Path) -> None:
    from tests.gateway.conftest import make_settings

    settings = make_settings(tmp_path, environment="production")
    assert settings.builtin_issuer_enabled is False
    assert ensure_issuer_key(settings) is False
    assert not issuer_key_path(settings).exists()


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(token_command)
    return app


def _env(federated_node: FederatedNode) -> dict[str, str]:
    s = federated_node.settings
    return {
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_FORCE_CODE": s.force_code,
        "GATEWAY_NODE_URL": s.node_url,
        "GATEWAY_DATA_DIR": str(s.data_dir),
        "GATEWAY_AUDITOR_TOKEN": s.auditor_token.get_secret_value(),
    }


def test_gateway_token_prints_a_token_the_node_accepts(federated_node: FederatedNode) -> None:
    result = CliRunner().invoke(
        _cli(),
        [
            "--user",
            "j.smith",
            "--roles",
            "analyst,supervisor",
            "--vetting",
            "NPPV3",
            "--units",
            "MSU",
            "--ttl",
            "600",
        ],
        env=_env(federated_node),
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    response = federated_node.probe(token)
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == "j.smith"
    assert response.json()["roles"] == ["analyst", "supervisor"]
    assert response.json()["vetting"] == "NPPV3"


def test_gateway_token_refuses_when_the_issuer_is_off(federated_node: FederatedNode) -> None:
    env = _env(federated_node) | {"GATEWAY_BUILTIN_ISSUER": "false"}
    result = CliRunner().invoke(_cli(), ["--user", "u", "--vetting", "NPPV2"], env=env)
    assert result.exit_code == 2
    assert "switched off" in result.output


def test_gateway_token_refuses_an_unknown_vetting_level(federated_node: FederatedNode) -> None:
    result = CliRunner().invoke(
        _cli(), ["--user", "u", "--vetting", "SECRET"], env=_env(federated_node)
    )
    assert result.exit_code == 1
    assert "unknown vetting level" in result.output
