"""Sealing of an audit entry's sensitive payload (search terms, free-text justification).

The payload is encrypted with AES-256-GCM under a retention-period key (e.g. one per month) and the
entry commits to the ciphertext, so destroying the period's key at the end of retention makes the
payload unreadable without changing a single entry byte: the Merkle tree still verifies.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit.errors import PayloadShredded, SealingError

__all__ = ["KeyringSealer", "SealedPayload", "Sealer"]

_KEY_SIZE = 32
_NONCE_SIZE = 12
_AAD_LABEL = b"audit-sealed-payload/v1\n"


@dataclass(frozen=True, slots=True)
class SealedPayload:
    """An encrypted payload as the entry stores it: which key, the nonce and the ciphertext."""

    key_id: str
    nonce: bytes
    ciphertext: bytes

    def to_json(self) -> dict[str, str]:
        """The JSON object form used inside an entry (binary fields in standard base64)."""
        return {
            "key_id": self.key_id,
            "nonce": base64.b64encode(self.nonce).decode("ascii"),
            "ciphertext": base64.b64encode(self.ciphertext).decode("ascii"),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, object]) -> SealedPayload:
        """Parse the JSON object form; raise ``SealingError`` if it is malformed."""
        if set(value) != {"key_id", "nonce", "ciphertext"}:
            raise SealingError("a sealed payload has exactly key_id, nonce and ciphertext")
        key_id, nonce, ciphertext = value["key_id"], value["nonce"], value["ciphertext"]
        if not (isinstance(key_id, str) and isinstance(nonce, str) and isinstance(ciphertext, str)):
            raise SealingError("sealed payload fields must be strings")
        try:
            return cls(
                key_id=key_id,
                nonce=base64.b64decode(nonce, validate=True),
                ciphertext=base64.b64decode(ciphertext, validate=True),
            )
        except binascii.Error as exc:
            raise SealingError("sealed payload is not valid base64") from exc


class Sealer(Protocol):
    """Encrypts payloads for the audit log and opens them while their key still exists."""

    def seal(self, plaintext: bytes, context: bytes) -> SealedPayload:
        """Encrypt ``plaintext`` bound to ``context`` (authenticated, not encrypted)."""
        ...

    def unseal(self, sealed: SealedPayload, context: bytes) -> bytes:
        """Decrypt; raise ``PayloadShredded`` if the key was destroyed, else ``SealingError``."""
        ...


def _associated_data(key_id: str, context: bytes) -> bytes:
    # Length-prefix the key id so (key_id, context) pairs can never run into each other.
    encoded = key_id.encode("utf-8")
    return _AAD_LABEL + len(encoded).to_bytes(2, "big") + encoded + context


class KeyringSealer:
    """A ``Sealer`` over an in-memory keyring of retention-period keys.

    The caller (the gateway's key service) loads the keys, chooses the current period's key id and
    calls ``shred`` when a period's retention ends. Python cannot guarantee the old key bytes are
    wiped from memory; the durable destruction is the key service deleting its stored copy.
    """

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str) -> None:
        self._keys: dict[str, AESGCM] = {}
        self._shredded: set[str] = set()
        for key_id, key in keys.items():
            self.add_key(key_id, key)
        if current_key_id not in self._keys:
            raise SealingError("the current key id is not in the keyring")
        self._current = current_key_id

    @property
    def current_key_id(self) -> str:
        """The key new payloads are sealed under."""
        return self._current

    @property
    def key_ids(self) -> frozenset[str]:
        """Ids of the keys still held (not shredded)."""
        return frozenset(self._keys)

    def add_key(self, key_id: str, key: bytes) -> None:
        """Hold another period's key; a shredded id can never come back."""
        if len(key) != _KEY_SIZE:
            raise SealingError(f"audit sealing keys are {_KEY_SIZE} bytes")
        if not key_id or len(key_id.encode("utf-8")) > 0xFFFF:
            raise SealingError("a key id must be a non-empty string")
        if key_id in self._shredded:
            raise SealingError(f"key {key_id!r} was shredded and cannot be reinstated")
        self._keys[key_id] = AESGCM(key)

    def use_key(self, key_id: str) -> None:
        """Seal new payloads under ``key_id`` from now on (start of a new retention period)."""
        if key_id not in self._keys:
            raise SealingError(f"key {key_id!r} is not in the keyring")
        self._current = key_id

    def shred(self, key_id: str) -> None:
        """Forget a period's key so its payloads can never be opened again."""
        if key_id == self._current:
            raise SealingError("cannot shred the key new payloads are sealed under")
        self._keys.pop(key_id, None)
        self._shredded.add(key_id)

    def seal(self, plaintext: bytes, context: bytes) -> SealedPayload:
        key_id = self._current
        nonce = os.urandom(_NONCE_SIZE)
        ciphertext = self._keys[key_id].encrypt(nonce, plaintext, _associated_data(key_id, context))
        return SealedPayload(key_id=key_id, nonce=nonce, ciphertext=ciphertext)

    def unseal(self, sealed: SealedPayload, context: bytes) -> bytes:
        if sealed.key_id in self._shredded:
            raise PayloadShredded(f"key {sealed.key_id!r} was shredded at the end of retention")
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise SealingError(f"key {sealed.key_id!r} is not in the keyring")
        if len(sealed.nonce) != _NONCE_SIZE:
            raise SealingError("sealed payload has a malformed nonce")
        try:
            return aead.decrypt(
                sealed.nonce, sealed.ciphertext, _associated_data(sealed.key_id, context)
            )
        except InvalidTag as exc:
            raise SealingError("sealed payload does not open under this key and context") from exc
