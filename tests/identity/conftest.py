"""A real node in a federation: initialised keys and database, a signed manifest naming its force,
the built-in issuer's routes and a probe route that needs an analyst."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from audit.entry import decode_entry
from gateway.app import create_app
from gateway.federation.manifest import (
    Manifest,
    Member,
    TrustedIssuer,
    authority_public_jwk,
    sign_manifest,
    write_manifest_file,
)
from gateway.identity.analysts import require_analyst
from gateway.identity.issuer import ensure_issuer_key
from gateway.identity.issuer_endpoints import router as issuer_router
from gateway.identity.principals import AnalystPrincipal
from gateway.node import init_node
from gateway.settings import Settings
from tests.gateway.conftest import NODE_URL, make_settings

FORCE = "20"


@dataclass
class Authority:
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def public_jwk(self) -> dict[str, Any]:
        return authority_public_jwk(self.key)

    def sign(self, manifest: Manifest) -> str:
        return sign_manifest(manifest, self.key, str(self.public_jwk["kid"]))


def manifest_of(version: int, *members: Member) -> Manifest:
    return Manifest(version=version, issued_at=datetime.now(UTC), members=list(members))


def member(
    force: str = FORCE,
    *,
    issuers: list[TrustedIssuer] | None = None,
    status: str = "active",
    url: str = NODE_URL,
) -> Member:
    return Member(
        force_code=force,
        name=f"Force {force}",
        node_url=url,
        issuers=issuers or [],
        status=status,  # type: ignore[arg-type]
    )


def build_app(settings: Settings) -> FastAPI:
    app = create_app(settings)
    if not any(getattr(r, "path", None) == "/oauth/jwks" for r in app.routes):
        app.include_router(issuer_router)

    @app.get("/probe/analyst")
    async def probe(analyst: AnalystPrincipal = Depends(require_analyst)) -> dict[str, Any]:
        return {
            "user_id": analyst.user_id,
            "force": analyst.force,
            "roles": list(analyst.roles),
            "vetting": analyst.vetting,
            "units": list(analyst.units),
            "issuer": analyst.issuer,
        }

    return app


@dataclass
class FederatedNode:
    http: TestClient
    settings: Settings
    authority: Authority

    def publish(self, manifest: Manifest) -> None:
        write_manifest_file(self.settings.manifest_path, self.authority.sign(manifest))

    def probe(self, token: str | None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.http.get("/probe/analyst", headers=headers)

    def auth_failure_reasons(self) -> list[str]:
        log = self.http.app.state.node.audit.log  # type: ignore[attr-defined]
        log.flush()
        entries = [decode_entry(raw) for raw in log.entries(0, log.size())]
        return [str(e.purpose) for e in entries if str(e.kind) == "auth_failure"]


def prepare_node(
    tmp_path: Path, authority: Authority, manifest: Manifest, **overrides: object
) -> Settings:
    settings = make_settings(tmp_path / "node", force_code=FORCE, **overrides)
    init_node(settings)
    ensure_issuer_key(settings)
    settings.authority_key_path.write_text(json.dumps(authority.public_jwk), encoding="utf-8")
    write_manifest_file(settings.manifest_path, authority.sign(manifest))
    return settings


@pytest.fixture
def authority() -> Authority:
    return Authority()


@pytest.fixture
def federated_node(tmp_path: Path, authority: Authority) -> Iterator[FederatedNode]:
    """Force 20's node; the manifest lists force 20 with no external issuer (built-in only)."""
    settings = prepare_node(tmp_path, authority, manifest_of(1, member()))
    with TestClient(build_app(settings), base_url=NODE_URL, raise_server_exceptions=False) as http:
        yield FederatedNode(http=http, settings=settings, authority=authority)


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class ExternalIssuer:
    """A force's identity provider under the test's control: keys for every allowed algorithm."""

    issuer: str = "https://idp.force20.example"
    audience: str = "urn:police-gateway:force-20"
    keys: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from joserfc.jwk import ECKey, OKPKey, RSAKey

        rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
        self.keys = {
            "RS256": rsa,
            "PS256": rsa,
            "ES256": ECKey.generate_key("P-256", parameters={"kid": "ec-1"}),
            "Ed25519": OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"}),
        }

    def jwks(self) -> dict[str, Any]:
        seen: dict[str, dict[str, Any]] = {}
        for key in self.keys.values():
            seen[str(key.kid)] = dict(key.as_dict(private=False))
        return {"keys": list(seen.values())}

    def trusted(self, **overrides: Any) -> TrustedIssuer:
        values: dict[str, Any] = {
            "issuer": self.issuer,
            "audience": self.audience,
            "jwks": self.jwks(),
        }
        values.update(overrides)
        return TrustedIssuer(**values)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        import time

        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "analyst-0042",
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "force": FORCE,
            "roles": ["analyst"],
            "vetting": "NPPV3",
            "units": ["MSU"],
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, alg: str = "RS256", *, kid: str | None = None, **claims: Any) -> str:
        from joserfc import jwt

        key = self.keys[alg]
        header = {"alg": alg, "kid": kid or key.kid, "typ": "at+jwt"}
        return jwt.encode(header, self.claims(**claims), key, algorithms=[alg])
