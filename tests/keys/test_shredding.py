"""Crypto-shredding: once a record's wrapped data key row is deleted, its fields are gone for good.

The wrapped-key table here is a real SQLite table standing in for the lead's storage table: the
point is what the key layer allows after the row is deleted, not how storage deletes it.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from gateway.keys import (
    CiphertextContextError,
    FieldCipher,
    LocalKeyFileProvider,
    WrappedKey,
    WrongDataKeyError,
    init_local_keyfile,
    new_data_key,
)

PERSON = {
    "/given_name": "Aleksandr",
    "/family_name": "Ivanov",
    "/date_of_birth": "1990-03-07",
    "/phone": "+447700900123",
    "/notes": "Seen at the car wash on Dale Street",
}


def _store_record(
    db: sqlite3.Connection, provider: LocalKeyFileProvider, record_id: str
) -> dict[str, str]:
    key_id, data_key = new_data_key()
    wrapped = provider.wrap(data_key)
    db.execute(
        "INSERT INTO wrapped_keys (key_id, record_id, kek_version, blob) VALUES (?, ?, ?, ?)",
        (key_id, record_id, wrapped.kek_version, wrapped.blob),
    )
    cipher = FieldCipher(data_key, key_id)
    return {
        pointer: cipher.encrypt(
            value, force="05", record_id=record_id, pointer=pointer, schema_version="1"
        )
        for pointer, value in PERSON.items()
    }


def _open_record(
    db: sqlite3.Connection, provider: LocalKeyFileProvider, record_id: str, body: dict[str, str]
) -> dict[str, object]:
    row = db.execute(
        "SELECT key_id, kek_version, blob FROM wrapped_keys WHERE record_id = ?", (record_id,)
    ).fetchone()
    if row is None:
        raise LookupError("no data key for this record")
    cipher = FieldCipher(provider.unwrap(WrappedKey(row[1], row[2])), row[0])
    return {
        pointer: cipher.decrypt(
            token, force="05", record_id=record_id, pointer=pointer, schema_version="1"
        )
        for pointer, token in body.items()
    }


@pytest.fixture
def db() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE TABLE wrapped_keys (key_id TEXT PRIMARY KEY, record_id TEXT, kek_version TEXT,"
        " blob BLOB)"
    )
    return connection


def test_deleting_the_wrapped_key_makes_the_record_undecryptable_even_with_the_kek(
    db: sqlite3.Connection, tmp_path: Path
) -> None:
    key_file = tmp_path / "kek.json"
    init_local_keyfile(key_file)
    provider = LocalKeyFileProvider(key_file)
    shredded = _store_record(db, provider, "record-1")
    kept = _store_record(db, provider, "record-2")
    assert _open_record(db, provider, "record-1", shredded) == PERSON

    # Erasure: the storage layer deletes the record's wrapped data key row.
    db.execute("DELETE FROM wrapped_keys WHERE record_id = ?", ("record-1",))

    # 1. The normal path has nothing to unwrap.
    with pytest.raises(LookupError):
        _open_record(db, provider, "record-1", shredded)

    # 2. Every key the KEK can still unwrap belongs to another record and is refused.
    token = shredded["/family_name"]
    for key_id, version, blob in db.execute("SELECT key_id, kek_version, blob FROM wrapped_keys"):
        other = FieldCipher(provider.unwrap(WrappedKey(version, blob)), key_id)
        with pytest.raises(WrongDataKeyError):
            other.decrypt(
                token, force="05", record_id="record-1", pointer="/family_name", schema_version="1"
            )

    # 3. Even the raw KEK bytes, used as the record's data key under its own key id, fail:
    #    the ciphertext depends only on the destroyed data key.
    kek_bytes = base64.b64decode(json.loads(key_file.read_text())["versions"][0]["key"])
    forged = FieldCipher(kek_bytes, token.split(".")[1])
    with pytest.raises(CiphertextContextError):
        forged.decrypt(
            token, force="05", record_id="record-1", pointer="/family_name", schema_version="1"
        )

    # Other records are untouched.
    assert _open_record(db, provider, "record-2", kept) == PERSON
