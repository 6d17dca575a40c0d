"""The signed federation manifest: models, signature, version ordering and reload on change."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from audit.checkpoint import VerifierKey
from gateway.federation.manifest import (
    Manifest,
    ManifestError,
    ManifestHolder,
    Member,
    TrustedIssuer,
    authority_public_jwk,
    open_manifest,
    sign_manifest,
    verify_manifest,
    write_manifest_file,
)
from gateway.identity.signing import NodeSigningKey
from tests.gateway.conftest import make_settings


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Authority:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.public = authority_public_jwk(self.key)

    def sign(self, manifest: Manifest) -> str:
        return sign_manifest(manifest, self.key, str(self.public["kid"]))


def member(force: str = "20", **extra: Any) -> Member:
    values: dict[str, Any] = {
        "force_code": force,
        "name": "West Midlands Police",
        "node_url": "https://gw.force20.example",
        "signing_keys": [NodeSigningKey.generate().public_jwk()],
        "issuers": [
            TrustedIssuer(
                issuer="https://idp.force20.example",
                audience="urn:gw:20",
                jwks_uri="https://idp.force20.example/jwks",
            )
        ],
    }
    values.update(extra)
    return Member(**values)


def manifest(version: int, *members: Member) -> Manifest:
    return Manifest(version=version, issued_at=datetime.now(UTC), members=list(members))


@pytest.fixture
def authority() -> Authority:
    return Authority()


def test_signed_manifest_round_trips(authority: Authority) -> None:
    original = manifest(3, member("20"), member("05", status="suspended"))
    token = authority.sign(original)
    assert token.count(".") == 2
    parsed = verify_manifest(token, authority.public)
    assert parsed == original
    assert [m.force_code for m in parsed.active_members()] == ["20"]
    assert parsed.member("05") is not None and parsed.member("01") is None


def test_unsigned_manifest_is_refused(authority: Authority) -> None:
    plain = manifest(1, member()).model_dump_json()
    with pytest.raises(ManifestError, match="not signed"):
        verify_manifest(plain, authority.public)


def test_manifest_signed_by_another_key_is_refused(authority: Authority) -> None:
    token = Authority().sign(manifest(1, member()))
    with pytest.raises(ManifestError, match="does not verify"):
        verify_manifest(token, authority.public)


def test_alg_none_manifest_is_refused(authority: Authority) -> None:
    header = b64url(json.dumps({"alg": "none"}).encode())
    payload = b64url(manifest(1, member()).model_dump_json().encode())
    with pytest.raises(ManifestError):
        verify_manifest(f"{header}.{payload}.", authority.public)


def test_hmac_keyed_with_the_authority_public_key_is_refused(authority: Authority) -> None:
    header = b64url(json.dumps({"alg": "HS256"}).encode())
    payload = b64url(manifest(1, member()).model_dump_json().encode())
    secret = json.dumps(authority.public).encode()
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(ManifestError):
        verify_manifest(f"{header}.{payload}.{b64url(mac)}", authority.public)


def test_tampered_manifest_is_refused(authority: Authority) -> None:
    header, payload, signature = authority.sign(manifest(1, member())).split(".")
    import base64

    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data["members"][0]["status"] = "suspended"
    forged = f"{header}.{b64url(json.dumps(data).encode())}.{signature}"
    with pytest.raises(ManifestError):
        verify_manifest(forged, authority.public)


def test_authority_key_must_be_a_public_ed25519_jwk(authority: Authority) -> None:
    token = authority.sign(manifest(1, member()))
    private = dict(authority.public, d="AAAA")
    with pytest.raises(ManifestError, match="private"):
        verify_manifest(token, private)
    with pytest.raises(ManifestError, match="Ed25519"):
        verify_manifest(token, {"kty": "RSA", "n": "x", "e": "AQAB"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"force_code": "99"}, "not a force code"),
        ({"force_code": "02"}, "alias"),
        ({"node_url": "ftp://x"}, "http"),
        ({"signing_keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc"}]}, "kid"),
        (
            {"signing_keys": [{"kty": "OKP", "crv": "Ed25519", "x": "a", "d": "b", "kid": "k"}]},
            "private",
        ),
        ({"signing_keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k"}]}, "shared secret"),
        ({"status": "paused"}, "active"),
        ({"log_key": "not+a+key"}, "verifier key"),
    ],
)
def test_member_validation(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        member(**change)


def test_member_takes_a_c2sp_log_key() -> None:
    key = NodeSigningKey.generate()
    vkey = VerifierKey("police-gateway/force-20", 0x01, key.public_key).to_text()
    assert member(log_key=vkey + "\n").log_key == vkey


def test_trusted_issuer_validation() -> None:
    with pytest.raises(ValidationError, match="not both"):
        TrustedIssuer(
            issuer="https://idp.example",
            audience="a",
            jwks_uri="https://idp.example/jwks",
            jwks={"keys": [NodeSigningKey.generate().public_jwk()]},
        )
    with pytest.raises(ValidationError, match="shared secret"):
        TrustedIssuer(
            issuer="https://idp.example", audience="a", jwks={"keys": [{"kty": "oct", "k": "x"}]}
        )
    discovered = TrustedIssuer(issuer="https://idp.example", audience="a")
    assert discovered.jwks_uri is None and discovered.jwks is None


def test_duplicate_members_are_refused() -> None:
    with pytest.raises(ValidationError, match="twice"):
        manifest(1, member("20"), member("20"))


def _holder(tmp_path: Path, authority: Authority, version: int = 2) -> ManifestHolder:
    key_path = tmp_path / "authority.pub.jwk"
    key_path.write_text(json.dumps(authority.public))
    write_manifest_file(tmp_path / "manifest.jws", authority.sign(manifest(version, member())))
    return ManifestHolder.load(tmp_path / "manifest.jws", key_path)


def test_holder_installs_a_newer_manifest_on_reload(tmp_path: Path, authority: Authority) -> None:
    holder = _holder(tmp_path, authority)
    assert holder.maybe_reload() is False  # unchanged file
    newer = manifest(3, member("20"), member("05"))
    write_manifest_file(tmp_path / "manifest.jws", authority.sign(newer))
    assert holder.maybe_reload() is True
    assert holder.current.version == 3
    assert holder.member("05") is not None
    assert holder.maybe_reload() is False


@pytest.mark.parametrize("bad", ["older", "same version, other content", "unsigned", "forged"])
def test_holder_keeps_current_manifest_when_the_new_one_is_bad(
    tmp_path: Path, authority: Authority, bad: str
) -> None:
    holder = _holder(tmp_path, authority, version=2)
    text = {
        "older": authority.sign(manifest(1, member("20"), member("05"))),
        "same version, other content": authority.sign(manifest(2, member("20"), member("05"))),
        "unsigned": manifest(9, member("05")).model_dump_json(),
        "forged": Authority().sign(manifest(9, member("05"))),
    }[bad]
    write_manifest_file(tmp_path / "manifest.jws", text)
    with pytest.raises(ManifestError):
        holder.reload()
    assert holder.current.version == 2 and holder.member("05") is None
    # maybe_reload never raises and does not retry the same refused file.
    write_manifest_file(tmp_path / "manifest.jws", text)
    assert holder.maybe_reload() is False
    assert holder.current.version == 2


def test_same_manifest_rewritten_is_not_an_error(tmp_path: Path, authority: Authority) -> None:
    holder = _holder(tmp_path, authority, version=2)
    write_manifest_file(tmp_path / "manifest.jws", holder.signed_text)
    assert holder.reload() is False


def test_open_manifest_without_a_file_gives_none(tmp_path: Path) -> None:
    assert open_manifest(make_settings(tmp_path)) is None


def test_open_manifest_refuses_a_manifest_without_the_authority_key(
    tmp_path: Path, authority: Authority
) -> None:
    settings = make_settings(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    write_manifest_file(settings.manifest_path, authority.sign(manifest(1, member())))
    with pytest.raises(ManifestError, match="authority key"):
        open_manifest(settings)
    settings.authority_key_path.write_text(json.dumps(authority.public))
    holder = open_manifest(settings)
    assert holder is not None and holder.current.version == 1
