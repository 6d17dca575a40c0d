"""Field-level encryption: one AES-256-GCM ciphertext per sensitive value, per-record data key.

Ciphertext format (compact, self-describing, safe in JSON and URLs):

    gw1.<key id>.<base64url(nonce || ciphertext || tag), unpadded>

`gw1` is the format version and `<key id>` names the record's data key, so storage can recognise
ciphertexts and find the wrapped key without decrypting anything. The associated data is the
RFC 8785 canonical JSON of {format, force, record_id, pointer, schema_version, key_id}: a
ciphertext copied to another record, field, schema version or force does not authenticate.

Values are JSON scalars; their JSON encoding is encrypted so that 3 stays an int, "3" a string,
true a bool. `null` is not encrypted: absence is not sensitive and storage keeps it as null.

Data keys live only as long as a request: `FieldCipher` is built from an unwrapped key, used and
dropped. Nothing here caches keys, so deleting the wrapped data key (crypto-shredding) leaves no
other way to recover the plaintext.
"""

from __future__ import annotations

import base64
import binascii
import json
import json.encoder
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.keys.errors import (
    CiphertextContextError,
    MalformedCiphertextError,
    WrongDataKeyError,
)

FORMAT = "gw1"
DATA_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PAYLOAD = re.compile(r"[A-Za-z0-9_-]+")
# RFC 6901: "" (whole document) or "/"-separated tokens where "~" only escapes "0" or "1".
_POINTER = re.compile(r"(?:/(?:[^~/]|~[01])*)*")

JsonScalar = str | int | float | bool


def new_data_key() -> tuple[str, bytes]:
    """A fresh per-record data key and its id (16 URL-safe characters from 96 random bits)."""
    return secrets.token_urlsafe(12), secrets.token_bytes(DATA_KEY_BYTES)


def is_field_ciphertext(value: object) -> bool:
    """Whether `value` looks like a field ciphertext (shape only; nothing is verified)."""
    return isinstance(value, str) and _split(value) is not None


def ciphertext_key_id(token: str) -> str:
    """The data key id a ciphertext names (so storage can fetch the right wrapped key)."""
    parts = _split(token)
    if parts is None:
        raise MalformedCiphertextError("not a gw1 field ciphertext")
    return parts[0]


def _split(token: str) -> tuple[str, str] | None:
    pieces = token.split(".")
    if len(pieces) != 3 or pieces[0] != FORMAT:
        return None
    _, key_id, payload = pieces
    if not _KEY_ID.fullmatch(key_id) or not _PAYLOAD.fullmatch(payload):
        return None
    return key_id, payload


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


# What `json.dumps(value, ensure_ascii=False, allow_nan=False)` builds on every call (non-default
# options make it construct an encoder each time); one instance gives the same bytes.
_SCALAR_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def _encode_value(value: JsonScalar) -> bytes:
    if value is None or not isinstance(value, str | int | float | bool):
        raise TypeError(f"only JSON scalars (str, int, float, bool) are encrypted, not {value!r}")
    try:
        return _SCALAR_ENCODER.encode(value).encode("utf-8")
    except ValueError:
        raise ValueError("NaN and infinity are not JSON and cannot be encrypted") from None


def _decode_value(raw: bytes) -> JsonScalar:
    value = json.loads(raw.decode("utf-8"))
    if value is None or not isinstance(value, str | int | float | bool):
        raise MalformedCiphertextError("decrypted field is not a JSON scalar")
    return value


def _canonical_context(
    *, force: str, fmt: str, key_id: str, pointer: str, record_id: str, schema_version: str
) -> bytes:
    """RFC 8785 canonical JSON of the associated-data object, built directly.

    For an object whose members are all strings, JCS is: members sorted by name, no whitespace,
    strings escaped exactly as `json.encoder.encode_basestring` (C-accelerated) escapes them.
    `rfc8785.dumps` gives the same bytes (a test checks this) but, being pure Python, it cost
    more than the AES-GCM call itself, about 10x the primitive for a ten-field record.
    """
    quote = json.encoder.encode_basestring
    return (
        f'{{"force":{quote(force)},"format":{quote(fmt)},"key_id":{quote(key_id)},'
        f'"pointer":{quote(pointer)},"record_id":{quote(record_id)},'
        f'"schema_version":{quote(schema_version)}}}'
    ).encode()


class FieldCipher:
    """Encrypts and decrypts the sensitive values of one record under its data key."""

    __slots__ = ("_aead", "_key_id")

    def __init__(self, data_key: bytes, key_id: str) -> None:
        if len(data_key) != DATA_KEY_BYTES:
            raise ValueError(f"a data key is {DATA_KEY_BYTES} bytes, got {len(data_key)}")
        if not _KEY_ID.fullmatch(key_id):
            raise ValueError("a data key id is 1-64 characters of [A-Za-z0-9_-]")
        self._aead = AESGCM(bytes(data_key))
        self._key_id = key_id

    def __repr__(self) -> str:
        return f"FieldCipher(key_id={self._key_id!r})"

    @property
    def key_id(self) -> str:
        return self._key_id

    def _associated_data(
        self, *, force: str, record_id: str, pointer: str, schema_version: str
    ) -> bytes:
        if not _POINTER.fullmatch(pointer):
            raise ValueError(f"not an RFC 6901 JSON pointer: {pointer!r}")
        return _canonical_context(
            force=force,
            fmt=FORMAT,
            key_id=self._key_id,
            pointer=pointer,
            record_id=record_id,
            schema_version=schema_version,
        )

    def encrypt(
        self,
        value: JsonScalar,
        *,
        force: str,
        record_id: str,
        pointer: str,
        schema_version: str,
    ) -> str:
        """Seal one value for the field at `pointer` (a concrete pointer: "/persons/0/dob")."""
        plaintext = _encode_value(value)
        aad = self._associated_data(
            force=force, record_id=record_id, pointer=pointer, schema_version=schema_version
        )
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, aad)
        return f"{FORMAT}.{self._key_id}.{_b64encode(nonce + sealed)}"

    def decrypt(
        self,
        token: str,
        *,
        force: str,
        record_id: str,
        pointer: str,
        schema_version: str,
    ) -> JsonScalar:
        """Open a ciphertext in the context it must have been sealed in; raises on any mismatch."""
        parts = _split(token) if isinstance(token, str) else None
        if parts is None:
            raise MalformedCiphertextError("not a gw1 field ciphertext")
        key_id, payload = parts
        if key_id != self._key_id:
            raise WrongDataKeyError(
                f"ciphertext at {pointer} of record {record_id} names data key {key_id}, "
                f"not {self._key_id}: it was sealed for another record"
            )
        try:
            raw = _b64decode(payload)
        except binascii.Error:
            raise MalformedCiphertextError("field ciphertext payload is not base64url") from None
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            raise MalformedCiphertextError("field ciphertext is truncated")
        aad = self._associated_data(
            force=force, record_id=record_id, pointer=pointer, schema_version=schema_version
        )
        try:
            plaintext = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise CiphertextContextError(
                f"ciphertext at {pointer} of record {record_id} does not authenticate: it was "
                "altered or sealed for another field, record, schema version or force"
            ) from None
        return _decode_value(plaintext)
