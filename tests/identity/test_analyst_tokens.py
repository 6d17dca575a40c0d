"""Analyst bearer tokens against a real node: accepted claims, and the attack matrix (each a 401
problem+json and an audited authentication failure with its reason)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from gateway.identity.analysts import AnalystTokenError, AnalystVerifier, VerifiedTokens
from gateway.identity.issuer import mint_analyst_token
from tests.gateway.conftest import NODE_URL
from tests.identity.conftest import (
    Authority,
    ExternalIssuer,
    FederatedNode,
    b64url,
    build_app,
    manifest_of,
    member,
    prepare_node,
)


@pytest.fixture
def idp() -> ExternalIssuer:
    return ExternalIssuer()


@pytest.fixture
def other_idp() -> ExternalIssuer:
    return ExternalIssuer(issuer="https://idp.force05.example", audience="urn:gw:05")


@pytest.fixture
def fed(
    tmp_path: Path, authority: Authority, idp: ExternalIssuer, other_idp: ExternalIssuer
) -> Iterator[FederatedNode]:
    """Force 20 trusts `idp`; force 05 trusts `other_idp` (which force 20 must not accept)."""
    manifest = manifest_of(
        1,
        member("20", issuers=[idp.trusted()]),
        member("05", issuers=[other_idp.trusted()], url="http://127.0.0.1:8006"),
    )
    settings = prepare_node(tmp_path, authority, manifest)
    with TestClient(build_app(settings), base_url=NODE_URL, raise_server_exceptions=False) as http:
        yield FederatedNode(http=http, settings=settings, authority=authority)


def _assert_refused(node: FederatedNode, token: str | None, reason: str) -> None:
    before = node.auth_failure_reasons()
    response = node.probe(token)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["status"] == 401 and body["type"].endswith(":unauthenticated")
    after = node.auth_failure_reasons()
    assert after[len(before) :] == [reason]


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "Ed25519"])
def test_token_from_trusted_issuer_maps_claims_to_analyst(
    fed: FederatedNode, idp: ExternalIssuer, alg: str
) -> None:
    response = fed.probe(idp.token(alg, roles=["analyst", "supervisor"], units="MSU CL"))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "user_id": "analyst-0042",
        "force": "20",
        "roles": ["analyst", "supervisor"],
        "vetting": "NPPV3",
        "units": ["MSU", "CL"],
        "issuer": idp.issuer,
    }


def test_force_claim_may_be_absent(fed: FederatedNode, idp: ExternalIssuer) -> None:
    response = fed.probe(idp.token(force=None))
    assert response.status_code == 200
    assert response.json()["force"] == "20"


def test_leeway_accepts_small_clock_skew(fed: FederatedNode, idp: ExternalIssuer) -> None:
    now = int(time.time())
    assert fed.settings.jwt_leeway_seconds == 30
    response = fed.probe(idp.token(exp=now - 10, nbf=now + 10, iat=now))
    assert response.status_code == 200


def _alg_none(idp: ExternalIssuer) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    return f"{header}.{b64url(json.dumps(idp.claims()).encode())}."


def _hs256_with_public_key(idp: ExternalIssuer) -> str:
    # The classic key-confusion attack: HMAC keyed with the issuer's published RSA public key.
    public_pem = idp.keys["RS256"].public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())
    payload = b64url(json.dumps(idp.claims()).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(mac)}"


def _tampered(idp: ExternalIssuer) -> str:
    header, payload, signature = idp.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["vetting"] = "DV"
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


ATTACKS: dict[str, tuple[Callable[[ExternalIssuer], str], str]] = {
    "alg none": (_alg_none, "alg_refused"),
    "HS256 keyed with the public key": (_hs256_with_public_key, "alg_refused"),
    "expired": (lambda idp: idp.token(exp=int(time.time()) - 120), "token_expired"),
    "not yet valid": (
        lambda idp: idp.token(nbf=int(time.time()) + 300),
        "token_not_yet_valid",
    ),
    "wrong issuer": (
        lambda idp: ExternalIssuer(issuer="https://evil.example").token(),
        "issuer_untrusted",
    ),
    "wrong audience": (lambda idp: idp.token(aud="urn:somebody-else"), "wrong_audience"),
    "unknown kid": (lambda idp: idp.token(kid="rotated-away"), "unknown_kid"),
    "tampered payload": (_tampered, "bad_signature"),
    "key of another issuer under a trusted kid": (
        lambda idp: ExternalIssuer(issuer=idp.issuer).token(),
        "bad_signature",
    ),
    "unknown vetting level": (lambda idp: idp.token(vetting="TOP"), "vetting_invalid"),
    "no vetting": (lambda idp: idp.token(vetting=None), "vetting_invalid"),
    "force claim of another force": (lambda idp: idp.token(force="05"), "force_mismatch"),
    "garbage": (lambda idp: "not-a-token", "token_malformed"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_refused_and_audited(
    fed: FederatedNode, idp: ExternalIssuer, attack: str
) -> None:
    make, reason = ATTACKS[attack]
    _assert_refused(fed, make(idp), reason)


def test_missing_token_is_refused_and_audited(fed: FederatedNode) -> None:
    _assert_refused(fed, None, "analyst_token_missing")


def test_issuer_trusted_for_force_a_cannot_act_for_force_b(
    fed: FederatedNode, other_idp: ExternalIssuer
) -> None:
    other = other_idp
    _assert_refused(fed, other.token(aud=other.audience, force="05"), "issuer_other_force")
    # Claiming this node's force does not help: the issuer is not trusted for it.
    _assert_refused(fed, other.token(aud=other.audience, force="20"), "issuer_other_force")


def test_token_of_a_suspended_force_is_refused(fed: FederatedNode, idp: ExternalIssuer) -> None:
    token = idp.token()
    assert fed.probe(token).status_code == 200
    fed.publish(manifest_of(2, member("20", issuers=[idp.trusted()], status="suspended")))
    _assert_refused(fed, token, "force_suspended")
    fed.publish(manifest_of(3, member("20", issuers=[idp.trusted()])))
    assert fed.probe(token).status_code == 200


def test_issuer_removed_from_manifest_is_refused_without_restart(
    fed: FederatedNode, idp: ExternalIssuer
) -> None:
    token = idp.token()
    assert fed.probe(token).status_code == 200
    fed.publish(manifest_of(2, member("20")))
    _assert_refused(fed, token, "issuer_untrusted")


def test_builtin_issuer_token_is_accepted_for_own_force(fed: FederatedNode) -> None:
    token = mint_analyst_token(
        fed.http.app.state.node,  # type: ignore[attr-defined]
        user_id="demo.analyst",
        roles=["analyst"],
        vetting="NPPV2",
        units=["MSU"],
    )
    response = fed.probe(token)
    assert response.status_code == 200, response.text
    assert response.json()["issuer"] == NODE_URL
    assert response.json()["vetting"] == "NPPV2"


def test_builtin_issuer_token_with_another_audience_is_refused(fed: FederatedNode) -> None:
    token = mint_analyst_token(
        fed.settings, user_id="u", roles=["analyst"], vetting="NPPV2", audience="urn:other"
    )
    _assert_refused(fed, token, "wrong_audience")


def test_node_without_manifest_refuses_analysts(tmp_path: Path, authority: Authority) -> None:
    settings = prepare_node(tmp_path, authority, manifest_of(1, member()))
    settings.manifest_path.unlink()
    with TestClient(build_app(settings), base_url=NODE_URL) as http:
        node = FederatedNode(http=http, settings=settings, authority=authority)
        token = mint_analyst_token(settings, user_id="u", roles=["analyst"], vetting="NPPV2")
        _assert_refused(node, token, "no_manifest")


def test_force_not_in_manifest_refuses_its_own_builtin_tokens(
    tmp_path: Path, authority: Authority
) -> None:
    settings = prepare_node(tmp_path, authority, manifest_of(1, member("05")))
    with TestClient(build_app(settings), base_url=NODE_URL) as http:
        node = FederatedNode(http=http, settings=settings, authority=authority)
        token = mint_analyst_token(settings, user_id="u", roles=["analyst"], vetting="NPPV2")
        _assert_refused(node, token, "force_not_member")


# --- tokens whose signature has verified are remembered, their claims are not -------------------


def _verifier(node: FederatedNode) -> AnalystVerifier:
    verifier = node.http.app.state.analyst_verifier  # type: ignore[attr-defined]
    assert isinstance(verifier, AnalystVerifier)
    return verifier


def test_a_repeated_token_is_not_verified_again(fed: FederatedNode, idp: ExternalIssuer) -> None:
    token = idp.token()
    assert fed.probe(token).status_code == 200
    verifier = _verifier(fed)
    checked = verifier.signatures_checked

    assert fed.probe(token).status_code == 200
    assert fed.probe(token).status_code == 200
    assert verifier.signatures_checked == checked

    assert fed.probe(idp.token(sub="analyst-0043")).status_code == 200
    assert verifier.signatures_checked == checked + 1


def test_a_remembered_token_is_still_refused_once_it_expires(
    fed: FederatedNode, idp: ExternalIssuer
) -> None:
    token = idp.token()
    assert fed.probe(token).status_code == 200
    verifier = _verifier(fed)
    manifest = fed.http.app.state.node.manifest.current  # type: ignore[attr-defined]
    expiry = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["exp"]
    later = expiry + fed.settings.jwt_leeway_seconds + 1
    checked = verifier.signatures_checked

    with pytest.raises(AnalystTokenError) as refused:
        asyncio.run(verifier.verify(token, manifest, now=later))

    assert refused.value.reason == "token_expired"
    assert verifier.signatures_checked == checked  # refused on its remembered claims


def test_a_remembered_token_with_another_signature_is_refused(
    fed: FederatedNode, idp: ExternalIssuer
) -> None:
    token = idp.token()
    assert fed.probe(token).status_code == 200
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    _assert_refused(fed, forged, "bad_signature")


def test_remembered_tokens_are_verified_again_after_the_time_to_live(
    fed: FederatedNode, idp: ExternalIssuer
) -> None:
    clock = [1000.0]
    verifier = AnalystVerifier(
        fed.settings, verified=VerifiedTokens(ttl_seconds=60, clock=lambda: clock[0])
    )
    manifest = fed.http.app.state.node.manifest.current  # type: ignore[attr-defined]
    token = idp.token()
    asyncio.run(verifier.verify(token, manifest))
    asyncio.run(verifier.verify(token, manifest))
    assert verifier.signatures_checked == 1

    clock[0] += 61
    asyncio.run(verifier.verify(token, manifest))

    assert verifier.signatures_checked == 2


def test_remembered_tokens_are_bounded() -> None:
    verified = VerifiedTokens(max_tokens=2)
    for n in range(5):
        verified.put(VerifiedTokens.key(f"token-{n}", "https://idp.example"), {"n": n})
    assert len(verified) == 2
