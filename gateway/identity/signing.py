"""The node's Ed25519 signing key: access tokens, audit checkpoints and, later, federation messages.

Stored as a PEM file (mode 0600) in the node's data directory by `gateway init`. Its key id is the
RFC 7638 JWK thumbprint, so partners can pin it from the federation manifest.
"""

from __future__ import annotations

import functools
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc.jwk import OKPKey


class SigningKeyError(Exception):
    pass


@dataclass(frozen=True)
class NodeSigningKey:
    private_key: Ed25519PrivateKey
    jwk: OKPKey

    @functools.cached_property
    def kid(self) -> str:
        # Cached: every signed federation message names it.
        return str(self.jwk.thumbprint())

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, object]:
        data: dict[str, object] = dict(self.jwk.as_dict(private=False))
        data["kid"] = self.kid
        data["alg"] = "Ed25519"
        data["use"] = "sig"
        return data

    @classmethod
    def from_private_key(cls, key: Ed25519PrivateKey) -> NodeSigningKey:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(private_key=key, jwk=OKPKey.import_key(pem))

    @classmethod
    def generate(cls) -> NodeSigningKey:
        return cls.from_private_key(Ed25519PrivateKey.generate())


def create_signing_key_file(path: Path) -> NodeSigningKey:
    """Create a new key file with mode 0600; refuses to overwrite an existing one."""
    key = NodeSigningKey.generate()
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key


def load_signing_key_file(path: Path) -> NodeSigningKey:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise SigningKeyError(
            f"node signing key {path.name} not found; run `gateway init`"
        ) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(f"node signing key {path.name} is readable by others; chmod 600 it")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError("node signing key is not an Ed25519 key")
    return NodeSigningKey.from_private_key(key)


def load_or_create_signing_key(path: Path) -> NodeSigningKey:
    if path.exists():
        return load_signing_key_file(path)
    return create_signing_key_file(path)
