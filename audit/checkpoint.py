"""Checkpoints (C2SP tlog-checkpoint) as signed notes (C2SP signed-note), and witness cosignatures
(C2SP tlog-cosignature, ``cosignature/v1`` with Ed25519).

A checkpoint body is three lines: origin, decimal tree size, base64 root hash (plus optional
extension lines). A signed note is that body, a blank line, then one line per signature:
``— <key name> <base64(4-byte key id || signature)>``. The log signs with signature type 0x01
(Ed25519 over the body); witnesses add type 0x04 lines (Ed25519 over ``cosignature/v1``, a time
line and the body, prefixed by the 8-byte timestamp).

Hand-written: no maintained Python package implements these formats; each rule cites its spec.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.errors import CheckpointError, CosignatureError

__all__ = [
    "SIGNATURE_TYPE_COSIGNATURE",
    "SIGNATURE_TYPE_ED25519",
    "Checkpoint",
    "NoteSignature",
    "SignedNote",
    "VerifierKey",
    "cosign",
    "key_id",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint",
    "verify_cosignature",
    "verify_note",
]

SIGNATURE_TYPE_ED25519 = 0x01
SIGNATURE_TYPE_COSIGNATURE = 0x04

_EM_DASH = "\u2014"
_MAX_SIGNATURES = 100  # the spec requires accepting at least 16
_MAX_TIMESTAMP = 2**63 - 1
_HASH_SIZE = 32
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def _raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _check_key_name(name: str) -> None:
    # signed-note: key names are non-empty and contain no Unicode spaces and no '+'.
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise CheckpointError(f"invalid key name {name!r}")


def key_id(key_name: str, signature_type: int, public_key: Ed25519PublicKey) -> bytes:
    """signed-note key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    _check_key_name(key_name)
    digest = hashlib.sha256(
        key_name.encode("utf-8") + b"\n" + bytes([signature_type]) + _raw_public_key(public_key)
    ).digest()
    return digest[:4]


def _b64decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise CheckpointError(f"{what} is not valid base64") from exc
    # Accept one spelling only, so a note's bytes cannot vary without its meaning varying.
    if base64.b64encode(raw).decode("ascii") != text:
        raise CheckpointError(f"{what} is not canonical base64")
    return raw


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A public key with its name and signature type, in the signed-note ``vkey`` string form
    ``<name>+<hex key id>+<base64(type || public key)>``."""

    name: str
    signature_type: int
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.signature_type, self.public_key)

    def to_text(self) -> str:
        material = bytes([self.signature_type]) + _raw_public_key(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(material).decode('ascii')}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse a vkey; raise ``CheckpointError`` if malformed or its key id does not match."""
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise CheckpointError("a verifier key has the form name+keyid+key")
        name, hex_id, material_b64 = parts
        _check_key_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise CheckpointError("a verifier key id is 8 lowercase hex digits")
        material = _b64decode(material_b64, "verifier key")
        if len(material) != 1 + 32 or material[0] not in (
            SIGNATURE_TYPE_ED25519,
            SIGNATURE_TYPE_COSIGNATURE,
        ):
            raise CheckpointError("only Ed25519 verifier keys (types 0x01, 0x04) are supported")
        vkey = cls(name, material[0], Ed25519PublicKey.from_public_bytes(material[1:]))
        if vkey.key_id.hex() != hex_id:
            raise CheckpointError("verifier key id does not match its name and key")
        return vkey


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: which log (origin), how many entries (size) and the root hash."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError("a checkpoint origin is one non-empty line")
        if self.size < 0:
            raise CheckpointError("a checkpoint size is non-negative")
        if len(self.root_hash) != _HASH_SIZE:
            raise CheckpointError(f"a checkpoint root hash is {_HASH_SIZE} bytes")
        if any(not line or "\n" in line for line in self.extensions):
            raise CheckpointError("checkpoint extension lines are non-empty single lines")

    def body(self) -> bytes:
        """The note text the log signs: newline-terminated lines."""
        lines = [
            self.origin,
            str(self.size),
            base64.b64encode(self.root_hash).decode("ascii"),
            *self.extensions,
        ]
        return ("\n".join(lines) + "\n").encode("utf-8")

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text (tlog-checkpoint "Note text")."""
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or any(not line for line in lines):
            raise CheckpointError("a checkpoint has at least three non-empty lines")
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise CheckpointError("checkpoint size is not a decimal without leading zeroes")
        root = _b64decode(root_text, "checkpoint root hash")
        return cls(origin, int(size_text), root, tuple(extensions))


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line of a signed note."""

    key_name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{_EM_DASH} {self.key_name} {blob}\n"


@dataclass(frozen=True, slots=True)
class SignedNote:
    """A signed note: its text (ending in a newline) and its signature lines, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        """The note's wire form: text, blank line, signature lines."""
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)

    def with_signature(self, signature: NoteSignature) -> SignedNote:
        return SignedNote(self.text, (*self.signatures, signature))

    @classmethod
    def parse(cls, note: str | bytes) -> SignedNote:
        """Split a note into text and signatures; raise ``CheckpointError`` if malformed."""
        if isinstance(note, bytes):
            try:
                note = note.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CheckpointError("a signed note is UTF-8") from exc
        # 1. Only newline may appear below U+0020, and the note ends with a newline.
        if any(ch < " " and ch != "\n" for ch in note):
            raise CheckpointError("a signed note has no control characters but newline")
        if not note.endswith("\n"):
            raise CheckpointError("a signed note ends with a newline")
        # 2. The last blank line separates the text from the signatures.
        split = note.rfind("\n\n")
        if split < 0:
            raise CheckpointError("a signed note has a blank line before its signatures")
        text, signature_block = note[: split + 1], note[split + 2 :]
        # 3. One or more signature lines: em dash, space, key name, space, base64.
        lines = signature_block[:-1].split("\n") if signature_block else []
        if not lines:
            raise CheckpointError("a signed note has at least one signature")
        if len(lines) > _MAX_SIGNATURES:
            raise CheckpointError("too many signatures on the note")
        signatures = []
        for line in lines:
            prefix = _EM_DASH + " "
            if not line.startswith(prefix):
                raise CheckpointError("a signature line starts with an em dash and a space")
            name, sep, blob_text = line[len(prefix) :].partition(" ")
            if not sep:
                raise CheckpointError("a signature line has a key name and a signature")
            _check_key_name(name)
            blob = _b64decode(blob_text, "signature")
            if len(blob) < 5:
                raise CheckpointError("a signature carries a key id and signature bytes")
            signatures.append(NoteSignature(name, blob[:4], blob[4:]))
        return cls(text, tuple(signatures))


def sign_note(text: str, key_name: str, private_key: Ed25519PrivateKey) -> SignedNote:
    """Sign arbitrary note text with an Ed25519 (type 0x01) key."""
    if not text.endswith("\n"):
        raise CheckpointError("note text must end with a newline")
    kid = key_id(key_name, SIGNATURE_TYPE_ED25519, private_key.public_key())
    signature = private_key.sign(text.encode("utf-8"))
    return SignedNote(text, (NoteSignature(key_name, kid, signature),))


def sign_checkpoint(
    checkpoint: Checkpoint, key_name: str, private_key: Ed25519PrivateKey
) -> SignedNote:
    """The log's signed checkpoint (the key name SHOULD be the origin)."""
    return sign_note(checkpoint.body().decode("utf-8"), key_name, private_key)


def _find_known(note: SignedNote, key_name: str, expected_id: bytes) -> list[NoteSignature]:
    # Signatures from other keys are ignored (spec: a key is its name AND id), never an error.
    return [s for s in note.signatures if s.key_name == key_name and s.key_id == expected_id]


def verify_note(note_text: str | bytes, key_name: str, public_key: Ed25519PublicKey) -> SignedNote:
    """Parse a note and check it carries a valid Ed25519 signature by the pinned key."""
    note = SignedNote.parse(note_text)
    expected_id = key_id(key_name, SIGNATURE_TYPE_ED25519, public_key)
    known = _find_known(note, key_name, expected_id)
    if not known:
        raise CheckpointError(f"note is not signed by {key_name}")
    message = note.text.encode("utf-8")
    for signature in known:
        try:
            public_key.verify(signature.signature, message)
        except InvalidSignature as exc:
            # A failed signature from a known key condemns the whole note (spec: SHOULD reject).
            raise CheckpointError(f"signature by {key_name} does not verify") from exc
    return note


def verify_checkpoint(
    note_text: str | bytes, origin: str, key_name: str, public_key: Ed25519PublicKey
) -> Checkpoint:
    """Verify a signed checkpoint from the log ``origin`` under its pinned key and parse it."""
    # 1. The log's signature over the note text.
    note = verify_note(note_text, key_name, public_key)
    # 2. The text is a well-formed checkpoint ...
    checkpoint = Checkpoint.parse_body(note.text)
    # 3. ... for the log we asked about, not another log signed with the same key.
    if checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def _cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(
    note: SignedNote | str,
    witness_name: str,
    witness_key: Ed25519PrivateKey,
    timestamp: int,
) -> SignedNote:
    """Add a witness's ``cosignature/v1`` line to a checkpoint note.

    The witness must already have verified the log's signature and consistency with the last
    checkpoint it cosigned; this function only produces the signature.
    """
    signed = SignedNote.parse(note) if isinstance(note, str) else note
    Checkpoint.parse_body(signed.text)  # a cosignature is only ever over a checkpoint
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise CosignatureError("cosignature timestamp out of range")
    kid = key_id(witness_name, SIGNATURE_TYPE_COSIGNATURE, witness_key.public_key())
    signature = witness_key.sign(_cosigned_message(signed.text, timestamp))
    return signed.with_signature(
        NoteSignature(witness_name, kid, timestamp.to_bytes(8, "big") + signature)
    )


def verify_cosignature(
    note: SignedNote | str | bytes,
    witness_name: str,
    witness_public_key: Ed25519PublicKey,
) -> int:
    """Check the witness's cosignature on a checkpoint note; return its timestamp (unix seconds).

    Does not check the log's own signature: call ``verify_checkpoint`` for that.
    """
    signed = note if isinstance(note, SignedNote) else SignedNote.parse(note)
    expected_id = key_id(witness_name, SIGNATURE_TYPE_COSIGNATURE, witness_public_key)
    known = _find_known(signed, witness_name, expected_id)
    if not known:
        raise CosignatureError(f"checkpoint is not cosigned by {witness_name}")
    timestamps = []
    for signature in known:
        if len(signature.signature) != 8 + 64:
            raise CosignatureError("a cosignature is an 8-byte timestamp and 64-byte signature")
        timestamp = int.from_bytes(signature.signature[:8], "big")
        if timestamp > _MAX_TIMESTAMP:
            raise CosignatureError("cosignature timestamp out of range")
        try:
            witness_public_key.verify(
                signature.signature[8:], _cosigned_message(signed.text, timestamp)
            )
        except InvalidSignature as exc:
            raise CosignatureError(f"cosignature by {witness_name} does not verify") from exc
        timestamps.append(timestamp)
    return max(timestamps)
