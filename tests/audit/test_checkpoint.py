"""C2SP signed notes, checkpoints and cosignatures: a reference vector, round trips, refusals."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import (
    SIGNATURE_TYPE_COSIGNATURE,
    SIGNATURE_TYPE_ED25519,
    Checkpoint,
    SignedNote,
    VerifierKey,
    cosign,
    key_id,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
    verify_cosignature,
    verify_note,
)
from audit.errors import CheckpointError, CosignatureError
from audit.merkle import leaf_hash

GO = json.loads((Path(__file__).parent / "vectors" / "signed_note_go.json").read_text("utf-8"))
ORIGIN = "audit.node05.police.example/log"
ROOT = leaf_hash(b"root")


def go_private_key() -> Ed25519PrivateKey:
    material = base64.b64decode(GO["skey"].split("+", 4)[4])
    assert material[0] == SIGNATURE_TYPE_ED25519
    return Ed25519PrivateKey.from_private_bytes(material[1:])


def test_reference_note_is_reproduced_byte_for_byte() -> None:
    note = sign_note(GO["text"], "PeterNeumann", go_private_key())
    assert note.to_text() == GO["note"]


def test_reference_verifier_key_parses_and_round_trips() -> None:
    vkey = VerifierKey.parse(GO["vkey"])
    assert vkey.name == "PeterNeumann"
    assert vkey.key_id.hex() == "c74f20a3"
    assert vkey.to_text() == GO["vkey"]
    assert verify_note(GO["note"], "PeterNeumann", vkey.public_key).text == GO["text"]


@pytest.mark.parametrize(
    "bad",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a3+BRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong type
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",
    ],
)
def test_mangled_verifier_keys_are_refused(bad: str) -> None:
    with pytest.raises(CheckpointError):
        VerifierKey.parse(bad)


def test_reference_note_with_changed_text_is_refused() -> None:
    public = VerifierKey.parse(GO["vkey"]).public_key
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_note(GO["note"].replace("cryptography", "cryptographY"), "PeterNeumann", public)


def test_checkpoint_body_follows_tlog_checkpoint() -> None:
    body = Checkpoint(ORIGIN, 42, ROOT).body().decode()
    assert body == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.parse_body(body) == Checkpoint(ORIGIN, 42, ROOT)


def test_signed_checkpoint_round_trips_and_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    checkpoint = Checkpoint(ORIGIN, 7, ROOT, extensions=("extra line",))
    text = sign_checkpoint(checkpoint, ORIGIN, key).to_text()
    assert SignedNote.parse(text).to_text() == text
    assert "\n\n\u2014 " + ORIGIN + " " in text
    assert verify_checkpoint(text, ORIGIN, ORIGIN, key.public_key()) == checkpoint


def test_checkpoint_for_another_origin_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    text = sign_checkpoint(Checkpoint("other.example/log", 7, ROOT), ORIGIN, key).to_text()
    with pytest.raises(CheckpointError, match="not 'audit"):
        verify_checkpoint(text, ORIGIN, ORIGIN, key.public_key())


def test_checkpoint_signed_by_another_key_is_refused() -> None:
    text = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointError, match="not signed by"):
        verify_checkpoint(text.to_text(), ORIGIN, ORIGIN, Ed25519PrivateKey.generate().public_key())


def test_altered_checkpoint_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    text = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), ORIGIN, key).to_text()
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(text.replace("\n7\n", "\n8\n"), ORIGIN, ORIGIN, key.public_key())


def test_unknown_signatures_are_ignored() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), ORIGIN, key)
    foreign = sign_note(note.text, "someone.else", other).signatures[0]
    combined = SignedNote(note.text, (foreign, *note.signatures)).to_text()
    assert verify_checkpoint(combined, ORIGIN, ORIGIN, key.public_key()).size == 7


@pytest.mark.parametrize(
    "note",
    [
        "a\n1\nAAAA\n",  # no signature block
        "a\n1\nAAAA\n\n",  # blank line but no signatures
        "a\n1\nAAAA\n\n- key AAAAAAAA\n",  # hyphen, not em dash
        "a\n1\nAAAA\n\n\u2014 key AAAA\n",  # signature too short for id + bytes
        "a\n1\nAAAA\n\n\u2014 key AAAAAAAA",  # no final newline
        "a\t\n1\nAAAA\n\n\u2014 key AAAAAAAA\n",  # control character
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(CheckpointError):
        SignedNote.parse(note)


@pytest.mark.parametrize(
    "body",
    ["o\n01\n" + base64.b64encode(ROOT).decode() + "\n", "o\n1\nAAAA\n", "o\n1\n", "o\n-1\nx\n"],
)
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse_body(body)


def test_cosignature_follows_tlog_cosignature_and_verifies() -> None:
    log_key, witness = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), ORIGIN, log_key)
    cosigned = cosign(note, "witness.node20.example", witness, 1_700_000_000)
    line = cosigned.signatures[-1]
    assert line.key_id == key_id(
        "witness.node20.example", SIGNATURE_TYPE_COSIGNATURE, witness.public_key()
    )
    assert int.from_bytes(line.signature[:8], "big") == 1_700_000_000
    # The signed message per the spec: header line, time line, then the checkpoint body.
    message = b"cosignature/v1\ntime 1700000000\n" + note.text.encode()
    witness.public_key().verify(line.signature[8:], message)
    text = cosigned.to_text()
    assert verify_cosignature(text, "witness.node20.example", witness.public_key()) == 1_700_000_000
    assert verify_checkpoint(text, ORIGIN, ORIGIN, log_key.public_key()).size == 7


def test_cosignature_is_not_a_log_signature_and_vice_versa() -> None:
    key = Ed25519PrivateKey.generate()
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), ORIGIN, key)
    with pytest.raises(CosignatureError):
        verify_cosignature(note, ORIGIN, key.public_key())
    cosigned_only = SignedNote(note.text, cosign(note, "w", key, 5).signatures[1:])
    with pytest.raises(CheckpointError):
        verify_checkpoint(cosigned_only.to_text(), ORIGIN, ORIGIN, key.public_key())


def test_tampered_cosignature_timestamp_is_refused() -> None:
    log_key, witness = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    note = cosign(sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), ORIGIN, log_key), "w", witness, 100)
    sig = note.signatures[-1]
    forged = type(sig)(sig.key_name, sig.key_id, (101).to_bytes(8, "big") + sig.signature[8:])
    tampered = SignedNote(note.text, (*note.signatures[:-1], forged))
    with pytest.raises(CosignatureError, match="does not verify"):
        verify_cosignature(tampered.to_text(), "w", witness.public_key())
