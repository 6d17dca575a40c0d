"""Field ciphers: round trips keep JSON types; any change of context or bytes fails, typed."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from gateway.keys import (
    CiphertextContextError,
    FieldCipher,
    JsonScalar,
    MalformedCiphertextError,
    WrongDataKeyError,
    ciphertext_key_id,
    is_field_ciphertext,
    new_data_key,
)
from gateway.keys.fields import _encode_value

CONTEXT: dict[str, str] = {
    "force": "05",
    "record_id": "0b7c6a0e-3c0e-4b8e-9d7e-5f1c2a9b8d11",
    "pointer": "/persons/0/date_of_birth",
    "schema_version": "1",
}


@pytest.fixture
def cipher() -> FieldCipher:
    key_id, key = new_data_key()
    return FieldCipher(key, key_id)


@pytest.mark.parametrize(
    "value",
    ["Aleksandr Ivanov", "", "Nguyễn Văn An 🚗", 1990, 0, -7, 2**70, 3.25, 1.0, True, False],
)
def test_round_trip_preserves_value_and_type(cipher: FieldCipher, value: JsonScalar) -> None:
    token = cipher.encrypt(value, **CONTEXT)
    opened = cipher.decrypt(token, **CONTEXT)
    assert opened == value
    assert type(opened) is type(value)


scalars = st.one_of(
    st.text(),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)


@given(value=st.one_of(scalars, st.floats()))
def test_plaintext_encoding_is_json_dumps(value: JsonScalar) -> None:
    """The sealed plaintext is exactly json.dumps(value, ensure_ascii=False, allow_nan=False)."""
    try:
        expected: bytes | None = json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError, match="NaN and infinity"):
            _encode_value(value)
    else:
        assert _encode_value(value) == expected


@given(value=scalars)
def test_any_json_scalar_round_trips(value: JsonScalar) -> None:
    key_id, key = new_data_key()
    cipher = FieldCipher(key, key_id)
    opened = cipher.decrypt(cipher.encrypt(value, **CONTEXT), **CONTEXT)
    assert opened == value
    assert type(opened) is type(value)


def test_ciphertext_is_self_describing(cipher: FieldCipher) -> None:
    token = cipher.encrypt("07700 900123", **CONTEXT)
    prefix, key_id, payload = token.split(".")
    assert prefix == "gw1"
    assert key_id == cipher.key_id
    assert is_field_ciphertext(token)
    assert ciphertext_key_id(token) == cipher.key_id
    assert "=" not in payload
    # nonce (12) + JSON "\"07700 900123\"" (14) + tag (16)
    assert len(base64.urlsafe_b64decode(payload + "==")) == 12 + 14 + 16
    assert not is_field_ciphertext("07700 900123")
    assert not is_field_ciphertext(42)


def test_same_value_encrypts_differently_each_time(cipher: FieldCipher) -> None:
    assert cipher.encrypt("x", **CONTEXT) != cipher.encrypt("x", **CONTEXT)


@pytest.mark.parametrize(
    ("field", "other"),
    [
        ("force", "20"),
        ("record_id", "0b7c6a0e-3c0e-4b8e-9d7e-5f1c2a9b8d12"),
        ("pointer", "/persons/1/date_of_birth"),
        ("pointer", "/persons/0/family_name"),
        ("schema_version", "2"),
    ],
)
def test_wrong_associated_data_fails(cipher: FieldCipher, field: str, other: str) -> None:
    token = cipher.encrypt("1990-03-07", **CONTEXT)
    with pytest.raises(CiphertextContextError, match="does not authenticate"):
        cipher.decrypt(token, **{**CONTEXT, field: other})


def test_ciphertext_moved_to_another_field_of_the_record_fails(cipher: FieldCipher) -> None:
    record = {
        "/persons/0/given_name": cipher.encrypt(
            "Amir", **{**CONTEXT, "pointer": "/persons/0/given_name"}
        ),
        "/persons/0/family_name": cipher.encrypt(
            "Khan", **{**CONTEXT, "pointer": "/persons/0/family_name"}
        ),
    }
    swapped = record["/persons/0/given_name"]
    with pytest.raises(CiphertextContextError):
        cipher.decrypt(swapped, **{**CONTEXT, "pointer": "/persons/0/family_name"})


def test_ciphertext_moved_to_another_record_fails(cipher: FieldCipher) -> None:
    other_id, other_key = new_data_key()
    other_record = FieldCipher(other_key, other_id)
    token = cipher.encrypt("Khan", **CONTEXT)
    with pytest.raises(WrongDataKeyError, match="sealed for another record"):
        other_record.decrypt(token, **{**CONTEXT, "record_id": "another-record"})


def test_ciphertext_relabelled_with_the_other_records_key_id_fails(cipher: FieldCipher) -> None:
    other_id, other_key = new_data_key()
    other_record = FieldCipher(other_key, other_id)
    token = cipher.encrypt("Khan", **CONTEXT)
    relabelled = ".".join(["gw1", other_id, token.split(".")[2]])
    with pytest.raises(CiphertextContextError):
        other_record.decrypt(relabelled, **CONTEXT)


def _flip_bit(token: str, byte_index: int) -> str:
    prefix, key_id, payload = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[byte_index] ^= 0x80
    return f"{prefix}.{key_id}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


@pytest.mark.parametrize("byte_index", [0, 11, 12, 14, -1])
def test_tampered_ciphertext_fails(cipher: FieldCipher, byte_index: int) -> None:
    token = cipher.encrypt("intelligence text", **CONTEXT)
    with pytest.raises(CiphertextContextError):
        cipher.decrypt(_flip_bit(token, byte_index), **CONTEXT)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "plain text",
        "gw2.abc.AAAA",
        "gw1.abc",
        "gw1.a b.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "gw1.abc.not*base64",
        "gw1.abc.AAAA.extra",
    ],
)
def test_malformed_ciphertext_is_rejected(token: str) -> None:
    cipher = FieldCipher(b"k" * 32, "abc")
    with pytest.raises(MalformedCiphertextError):
        cipher.decrypt(token, **CONTEXT)


def test_truncated_ciphertext_is_rejected(cipher: FieldCipher) -> None:
    token = cipher.encrypt("x", **CONTEXT)
    with pytest.raises(MalformedCiphertextError, match="truncated"):
        cipher.decrypt(token[: len("gw1.") + len(cipher.key_id) + 1 + 20], **CONTEXT)


@pytest.mark.parametrize("value", [None, math.nan, math.inf, ["a"], {"a": 1}, b"bytes"])
def test_only_finite_json_scalars_are_encrypted(cipher: FieldCipher, value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        cipher.encrypt(value, **CONTEXT)


@pytest.mark.parametrize("pointer", ["persons/0", "/a~2b", "/a~"])
def test_pointer_must_be_rfc6901(cipher: FieldCipher, pointer: str) -> None:
    with pytest.raises(ValueError, match="JSON pointer"):
        cipher.encrypt("x", **{**CONTEXT, "pointer": pointer})


def test_escaped_pointer_tokens_are_accepted(cipher: FieldCipher) -> None:
    context = {**CONTEXT, "pointer": "/notes/a~1b/~0x"}
    assert cipher.decrypt(cipher.encrypt("x", **context), **context) == "x"


def test_data_key_and_id_are_validated() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        FieldCipher(b"short", "abc")
    with pytest.raises(ValueError, match="key id"):
        FieldCipher(b"k" * 32, "has.dot")


def test_new_data_keys_are_fresh_and_repr_hides_key() -> None:
    first_id, first_key = new_data_key()
    second_id, second_key = new_data_key()
    assert first_id != second_id
    assert first_key != second_key
    assert len(first_key) == 32
    assert first_key.hex() not in repr(FieldCipher(first_key, first_id))


@given(
    force=st.text(),
    record_id=st.text(),
    pointer=st.text(),
    schema_version=st.text(),
)
def test_associated_data_is_rfc8785_canonical_json(
    force: str, record_id: str, pointer: str, schema_version: str
) -> None:
    from gateway.keys.fields import _canonical_context

    try:
        expected = rfc8785.dumps(
            {
                "format": "gw1",
                "force": force,
                "record_id": record_id,
                "pointer": pointer,
                "schema_version": schema_version,
                "key_id": "abc",
            }
        )
    except rfc8785.CanonicalizationError:
        # Lone surrogates are not valid JSON text; they cannot reach a field cipher either.
        with pytest.raises(UnicodeEncodeError):
            _canonical_context(
                force=force,
                fmt="gw1",
                key_id="abc",
                pointer=pointer,
                record_id=record_id,
                schema_version=schema_version,
            )
        return
    assert (
        _canonical_context(
            force=force,
            fmt="gw1",
            key_id="abc",
            pointer=pointer,
            record_id=record_id,
            schema_version=schema_version,
        )
        == expected
    )
