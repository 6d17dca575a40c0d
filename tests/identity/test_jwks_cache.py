"""Issuer keys fetched over HTTP: caching, refresh on an unknown kid (rate-limited), discovery,
and keeping the last good keys when the issuer is briefly unreachable."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.federation.manifest import TrustedIssuer
from gateway.identity.analysts import AnalystTokenError, AnalystVerifier, JwksCache
from tests.gateway.conftest import make_settings
from tests.identity.conftest import ExternalIssuer, manifest_of, member

JWKS_URL = "https://idp.force20.example/jwks"


@dataclass
class IssuerServer:
    """The issuer's HTTP side, as an httpx transport: counts requests, can rotate or go down."""

    idp: ExternalIssuer
    requests: list[str] = field(default_factory=list)
    down: bool = False
    discovery_issuer: str | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url.path)
        if self.down:
            return httpx.Response(503)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": self.discovery_issuer or self.idp.issuer,
                    "jwks_uri": JWKS_URL,
                },
            )
        if request.url.path == "/jwks":
            return httpx.Response(200, json=self.idp.jwks())
        return httpx.Response(404)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp() -> ExternalIssuer:
    return ExternalIssuer()


@pytest.fixture
def server(idp: ExternalIssuer) -> IssuerServer:
    return IssuerServer(idp)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _verifier(tmp_path: Path, server: IssuerServer, clock: Clock) -> AnalystVerifier:
    cache = JwksCache(transport=httpx.MockTransport(server.handle), clock=clock)
    return AnalystVerifier(make_settings(tmp_path, force_code="20"), jwks=cache)


def _verify(verifier: AnalystVerifier, token: str, *, entry: TrustedIssuer) -> Any:
    manifest = manifest_of(1, member("20", issuers=[entry]))
    return asyncio.run(verifier.verify(token, manifest))


def test_keys_are_fetched_once_and_cached(
    tmp_path: Path, idp: ExternalIssuer, server: IssuerServer, clock: Clock
) -> None:
    verifier = _verifier(tmp_path, server, clock)
    entry = idp.trusted(jwks=None, jwks_uri=JWKS_URL)
    for alg in ("RS256", "ES256", "Ed25519", "RS256"):
        assert _verify(verifier, idp.token(alg), entry=entry).user_id == "analyst-0042"
    assert server.requests == ["/jwks"]


def test_rotated_key_is_found_by_refreshing_on_unknown_kid(
    tmp_path: Path, idp: ExternalIssuer, server: IssuerServer, clock: Clock
) -> None:
    from joserfc.jwk import RSAKey

    verifier = _verifier(tmp_path, server, clock)
    entry = idp.trusted(jwks=None, jwks_uri=JWKS_URL)
    _verify(verifier, idp.token(), entry=entry)
    clock.now += 31  # past the minimum refresh interval, well within the cache lifetime
    idp.keys["RS256"] = RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})
    assert _verify(verifier, idp.token(), entry=entry).user_id == "analyst-0042"
    assert server.requests == ["/jwks", "/jwks"]


def test_unknown_kid_refresh_is_rate_limited(
    tmp_path: Path, idp: ExternalIssuer, server: IssuerServer, clock: Clock
) -> None:
    verifier = _verifier(tmp_path, server, clock)
    entry = idp.trusted(jwks=None, jwks_uri=JWKS_URL)
    _verify(verifier, idp.token(), entry=entry)
    clock.now += 31
    for n in range(5):
        with pytest.raises(AnalystTokenError) as refused:
            _verify(verifier, idp.token(kid=f"random-{n}"), entry=entry)
        assert refused.value.reason == "unknown_kid"
    # One refresh for the first unknown kid; the other four come within the refresh interval.
    assert server.requests == ["/jwks", "/jwks"]
    clock.now += 31
    with pytest.raises(AnalystTokenError):
        _verify(verifier, idp.token(kid="random-again"), entry=entry)
    assert len(server.requests) == 3


def test_cache_expires_after_max_age(
    tmp_path: Path, idp: ExternalIssuer, server: IssuerServer, clock: Clock
) -> None:
    verifier = _verifier(tmp_path, server, clock)
    entry = idp.trusted(jwks=None, jwks_uri=JWKS_URL)
    _verify(verifier, idp.token(), entry=entry)
    clock.now += 601
    _verify(verifier, idp.token(), entry=entry)
    assert server.requests == ["/jwks", "/jwks"]


def test_last_good_keys_are_kept_while_the_issuer_is_down(
    tmp_path: Path, idp: ExternalIssuer, server: IssuerServer, clock: Clock
) -> None:
    verifier = _verifier(tmp_path, server, clock)
    entry = idp.trusted(jwks=None, jwks_uri=JWKS_URL)
    _verify(verifier, idp.token(), entry=entry)
    server.down = True
    clock.now += 601
    assert _verify(verifier, idp.token(), entry=entry).user_id == "analyst-0042"


def test_issuer_unreachable_without_cached_keys_is_refused(
    tmp_path: Path, idp: ExternalIssuer, server: IssuerServer, clock: Clock
) -> None:
    server.down = True
    verifier = _verifier(tmp_path, server, clock)
    with pytest.raises(AnalystTokenError) as refused:
        _verify(verifier, idp.token(), entry=idp.trusted(jwks=None, jwks_uri=JWKS_URL))
    assert refused.value.reason == "jwks_unavailable"


def test_jwks_uri_is_discovered_when_the_manifest_gives_none(
    tmp_path: Path, idp: ExternalIssuer, server: IssuerServer, clock: Clock
) -> None:
    verifier = _verifier(tmp_path, server, clock)
    entry = idp.trusted(jwks=None, jwks_uri=None)
    _verify(verifier, idp.token(), entry=entry)
    _verify(verifier, idp.token("ES256"), entry=entry)
    assert server.requests == ["/.well-known/openid-configuration", "/jwks"]


def test_discovery_naming_another_issuer_is_refused(
    tmp_path: Path, idp: ExternalIssuer, server: IssuerServer, clock: Clock
) -> None:
    server.discovery_issuer = "https://impostor.example"
    verifier = _verifier(tmp_path, server, clock)
    with pytest.raises(AnalystTokenError) as refused:
        _verify(verifier, idp.token(), entry=idp.trusted(jwks=None, jwks_uri=None))
    assert refused.value.reason == "jwks_unavailable"


def test_symmetric_keys_in_a_jwks_never_verify(
    tmp_path: Path, idp: ExternalIssuer, server: IssuerServer, clock: Clock
) -> None:
    from joserfc import jwt
    from joserfc.jwk import OctKey

    secret = OctKey.generate_key(256, parameters={"kid": "oct-1"})
    original = server.idp.jwks

    def with_secret() -> dict[str, Any]:
        keys = original()
        keys["keys"].append(dict(secret.as_dict(private=True)))
        return keys

    server.idp.jwks = with_secret  # type: ignore[method-assign]
    verifier = _verifier(tmp_path, server, clock)
    token = jwt.encode({"alg": "HS256", "kid": "oct-1"}, idp.claims(), secret, algorithms=["HS256"])
    with pytest.raises(AnalystTokenError) as refused:
        _verify(verifier, token, entry=idp.trusted(jwks=None, jwks_uri=JWKS_URL))
    assert refused.value.reason == "alg_refused"


def test_key_published_for_one_algorithm_does_not_verify_another(
    tmp_path: Path, idp: ExternalIssuer, server: IssuerServer, clock: Clock
) -> None:
    jwks = idp.jwks()
    for key in jwks["keys"]:
        if key["kty"] == "RSA":
            key["alg"] = "RS256"
    verifier = _verifier(tmp_path, server, clock)
    entry = idp.trusted(jwks=jwks)
    assert _verify(verifier, idp.token("RS256"), entry=entry).user_id == "analyst-0042"
    with pytest.raises(AnalystTokenError) as refused:
        _verify(verifier, idp.token("PS256"), entry=entry)
    assert refused.value.reason == "alg_refused"
