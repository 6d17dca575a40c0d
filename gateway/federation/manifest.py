"""The federation manifest: the signed trust registry every node reads to know its partners.

A manifest lists the member forces (code, name, node URL, node signing keys, the issuers trusted
for that force's analysts, status, audit-log verifier key). The federation authority signs it as a
compact JWS (alg Ed25519) over its RFC 8785 canonical JSON. Nodes refuse a manifest that is
unsigned, wrongly signed, or not newer than the one they hold, and pick up a new one without a
restart (`ManifestHolder.maybe_reload`).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from audit.checkpoint import VerifierKey
from audit.errors import CheckpointError
from schemas.canonical import canonical_json
from schemas.forces import UnknownForceError, get_force

if TYPE_CHECKING:
    from gateway.settings import Settings

log = structlog.get_logger(__name__)

MANIFEST_ALGORITHMS = ["Ed25519", "EdDSA"]  # RFC 9864 name first; "EdDSA" from older signers
MANIFEST_TYPE = "federation-manifest+jws"
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})


class ManifestError(Exception):
    """A manifest (or the authority key) that a node must not use. The message says why."""


def _check_url(value: str, what: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in {"https", "http"} or not parsed.netloc:
        raise ValueError(f"{what} must be an http(s) URL")
    return value


def _check_public_jwk(jwk: dict[str, Any], what: str) -> None:
    if not isinstance(jwk.get("kty"), str):
        raise ValueError(f"{what} needs a kty")
    if jwk["kty"] == "oct":
        raise ValueError(f"{what} must be an asymmetric public key, not a shared secret")
    if _PRIVATE_JWK_MEMBERS & jwk.keys():
        raise ValueError(f"{what} holds private key material; publish the public key only")


class TrustedIssuer(BaseModel):
    """An identity provider whose tokens a member force's analysts present."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str
    audience: str = Field(min_length=1)
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer_is_url(cls, value: str) -> str:
        return _check_url(value, "issuer")

    @field_validator("jwks_uri")
    @classmethod
    def _jwks_uri_is_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value, "jwks_uri")

    @field_validator("jwks")
    @classmethod
    def _jwks_is_public_key_set(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        keys = value.get("keys")
        if not isinstance(keys, list) or not keys:
            raise ValueError('inline jwks must be {"keys": [...]} with at least one key')
        for key in keys:
            if not isinstance(key, dict):
                raise ValueError("each inline jwks key must be a JSON object")
            _check_public_jwk(key, "an inline jwks key")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> TrustedIssuer:
        # Neither means "discover jwks_uri from the issuer's OpenID configuration".
        if self.jwks_uri is not None and self.jwks is not None:
            raise ValueError("give jwks_uri or inline jwks, not both")
        return self


class Member(BaseModel):
    """One force in the federation and how to reach and trust its node."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    force_code: str
    name: str = Field(min_length=1, max_length=200)
    node_url: str
    signing_keys: list[dict[str, Any]] = Field(default_factory=list)
    issuers: list[TrustedIssuer] = Field(default_factory=list)
    status: Literal["active", "suspended"] = "active"
    contact: str | None = Field(default=None, max_length=300)
    log_key: str | None = None

    @field_validator("force_code")
    @classmethod
    def _known_force(cls, value: str) -> str:
        try:
            force = get_force(value)
        except UnknownForceError:
            raise ValueError(f"{value!r} is not a force code in the registry") from None
        if force.code != value:
            raise ValueError(f"use the force's own code {force.code!r}, not the alias {value!r}")
        return value

    @field_validator("node_url")
    @classmethod
    def _node_url(cls, value: str) -> str:
        return _check_url(value, "node_url")

    @field_validator("signing_keys")
    @classmethod
    def _signing_keys(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kids = set()
        for key in value:
            _check_public_jwk(key, "a node signing key")
            kid = key.get("kid")
            if not isinstance(kid, str) or not kid:
                raise ValueError("every node signing key needs a kid (keys rotate by kid)")
            if kid in kids:
                raise ValueError(f"node signing key id {kid!r} appears twice")
            kids.add(kid)
        return value

    @field_validator("log_key")
    @classmethod
    def _log_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            VerifierKey.parse(value.strip())
        except CheckpointError as exc:
            raise ValueError(f"log_key is not a verifier key: {exc}") from None
        return value.strip()

    def signing_key(self, kid: str) -> dict[str, Any] | None:
        return next((key for key in self.signing_keys if key.get("kid") == kid), None)

    def trusted_issuer(self, issuer: str) -> TrustedIssuer | None:
        return next((entry for entry in self.issuers if entry.issuer == issuer), None)


class Manifest(BaseModel):
    """The whole trust registry at one version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    issued_at: datetime
    members: list[Member] = Field(default_factory=list)

    @field_validator("members")
    @classmethod
    def _unique_members(cls, value: list[Member]) -> list[Member]:
        codes = [member.force_code for member in value]
        duplicated = sorted({code for code in codes if codes.count(code) > 1})
        if duplicated:
            raise ValueError(f"force code(s) listed twice: {', '.join(duplicated)}")
        return value

    def member(self, force_code: str) -> Member | None:
        return next((m for m in self.members if m.force_code == force_code), None)

    def active_members(self) -> list[Member]:
        return [m for m in self.members if m.status == "active"]


# --- signing and verification ------------------------------------------------------------------


def authority_public_jwk(private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The authority's public JWK (with its RFC 7638 thumbprint as kid) that nodes pin."""
    key = OKPKey.import_key(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public: dict[str, Any] = dict(key.as_dict(private=False))
    public["kid"] = key.thumbprint()
    public["alg"] = "Ed25519"
    public["use"] = "sig"
    return public


def sign_manifest(manifest: Manifest, authority_private_key: Ed25519PrivateKey, kid: str) -> str:
    """Compact JWS (alg Ed25519) over the manifest's canonical JSON."""
    key = OKPKey.import_key(
        authority_private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    header = {"alg": "Ed25519", "kid": kid, "typ": MANIFEST_TYPE}
    return jws.serialize_compact(header, canonical_json(manifest), key, algorithms=["Ed25519"])


def _authority_key(authority_public_jwk: dict[str, Any]) -> OKPKey:
    if authority_public_jwk.get("kty") != "OKP" or authority_public_jwk.get("crv") != "Ed25519":
        raise ManifestError("the federation authority key must be an Ed25519 public JWK")
    if "d" in authority_public_jwk:
        raise ManifestError("the authority key file holds a private key; give nodes the public JWK")
    try:
        return OKPKey.import_key(authority_public_jwk)
    except (JoseError, ValueError, TypeError) as exc:
        raise ManifestError("the federation authority key is not a valid JWK") from exc


def verify_manifest(jws_text: str, authority_public_jwk: dict[str, Any]) -> Manifest:
    """Check the authority's signature and parse the manifest; raise ManifestError otherwise."""
    key = _authority_key(authority_public_jwk)
    text = jws_text.strip()
    # 1. A manifest is only ever accepted as a compact JWS: plain JSON is an unsigned manifest.
    if text.startswith("{") or text.count(".") != 2:
        raise ManifestError("the manifest is not signed (expected a compact JWS)")
    # 2. Only the EdDSA family: joserfc refuses "none", HMAC and everything else before verifying.
    try:
        signed = jws.deserialize_compact(text, key, algorithms=MANIFEST_ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise ManifestError(
            "the manifest signature does not verify with the authority key"
        ) from exc
    # 3. A kid in the header must name the pinned key, so a rotated authority key is noticed.
    header_kid = signed.protected.get("kid")
    pinned_kid = authority_public_jwk.get("kid")
    if header_kid and pinned_kid and header_kid != pinned_kid:
        raise ManifestError("the manifest is signed by a different authority key id")
    # 4. The payload must be a valid manifest.
    try:
        return Manifest.model_validate_json(signed.payload)
    except ValidationError as exc:
        raise ManifestError(f"the signed manifest is not valid: {exc.errors()[0]['msg']}") from exc


def read_authority_key(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"federation authority key {path} not found") from None
    except (OSError, ValueError) as exc:
        raise ManifestError(f"federation authority key {path} is not readable JSON") from exc
    if not isinstance(data, dict):
        raise ManifestError("the federation authority key file must hold one JWK object")
    _authority_key(data)
    return data


def write_manifest_file(path: Path, jws_text: str) -> None:
    """Replace the file atomically so a node never reads half a manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(jws_text + "\n", encoding="utf-8")
    os.replace(temporary, path)


# --- the node's view ---------------------------------------------------------------------------


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    # mtime alone can repeat within one clock tick; an atomic replace always changes the inode.
    return (info.st_mtime_ns, info.st_size, info.st_ino)


class ManifestHolder:
    """The manifest a node currently trusts, replaced only by a validly signed newer version."""

    def __init__(
        self,
        *,
        manifest: Manifest,
        jws_text: str,
        manifest_path: Path,
        authority_jwk: dict[str, Any],
    ) -> None:
        self._manifest = manifest
        self._jws_text = jws_text.strip()
        self._path = manifest_path
        self._authority_jwk = authority_jwk
        self._stamp = _file_stamp(manifest_path)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, manifest_path: Path, authority_key_path: Path) -> ManifestHolder:
        authority_jwk = read_authority_key(authority_key_path)
        try:
            text = manifest_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ManifestError(f"federation manifest {manifest_path} is not readable") from exc
        manifest = verify_manifest(text, authority_jwk)
        log.info("federation.manifest_loaded", version=manifest.version)
        return cls(
            manifest=manifest,
            jws_text=text,
            manifest_path=manifest_path,
            authority_jwk=authority_jwk,
        )

    @property
    def current(self) -> Manifest:
        return self._manifest

    @property
    def signed_text(self) -> str:
        """The compact JWS of the current manifest (to hand to a partner as-is)."""
        return self._jws_text

    def member(self, force_code: str) -> Member | None:
        return self._manifest.member(force_code)

    def active_members(self) -> list[Member]:
        return self._manifest.active_members()

    def install(self, jws_text: str) -> bool:
        """Verify and install a manifest; True if it is newer than the current one."""
        candidate = verify_manifest(jws_text, self._authority_jwk)
        with self._lock:
            current = self._manifest
            if candidate.version == current.version and candidate == current:
                return False
            if candidate.version <= current.version:
                raise ManifestError(
                    f"manifest version {candidate.version} is not newer than the version "
                    f"{current.version} this node holds"
                )
            self._manifest = candidate
            self._jws_text = jws_text.strip()
        log.info("federation.manifest_installed", version=candidate.version)
        return True

    def reload(self) -> bool:
        """Re-read the manifest file. True if a newer manifest was installed; raises ManifestError
        (keeping the current manifest) for an unsigned, wrongly signed or older one."""
        stamp = _file_stamp(self._path)
        try:
            text = self._path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ManifestError(f"federation manifest {self._path} is not readable") from exc
        try:
            return self.install(text)
        finally:
            self._stamp = stamp

    def maybe_reload(self) -> bool:
        """Reload only if the file changed since the last look; never raises. A refused file is
        logged once and not retried until it changes again."""
        stamp = _file_stamp(self._path)
        if stamp is None or stamp == self._stamp:
            return False
        try:
            return self.reload()
        except ManifestError as exc:
            log.warning(
                "federation.manifest_refused", reason=str(exc), version=self._manifest.version
            )
            return False


def open_manifest(settings: Settings) -> ManifestHolder | None:
    """The node's manifest, or None when it has none (then it refuses analysts and partners).

    Raises ManifestError when a manifest file exists but cannot be trusted: a node must not start
    half-federated.
    """
    if not settings.manifest_path.exists():
        log.info("federation.manifest_absent")
        return None
    return ManifestHolder.load(settings.manifest_path, settings.authority_key_path)
