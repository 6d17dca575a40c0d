"""The local key file: created 0600, refused when others can read it, retired keys erased."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from gateway.keys import (
    KeyFileFormatError,
    KeyFilePermissionError,
    LocalKeyFileProvider,
    init_local_keyfile,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_a_0600_file_with_one_current_version(tmp_path: Path) -> None:
    path = tmp_path / "node" / "kek.json"
    init_local_keyfile(path)
    assert _mode(path) == 0o600
    document = json.loads(path.read_text(encoding="utf-8"))
    [entry] = document["versions"]
    assert entry["version"] == "v1"
    assert entry["state"] == "current"
    assert len(base64.b64decode(entry["key"])) == 32


def test_init_ignores_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        init_local_keyfile(tmp_path / "kek.json")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "kek.json") == 0o600


def test_init_refuses_to_overwrite_an_existing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    init_local_keyfile(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileFormatError, match="refusing to overwrite"):
        init_local_keyfile(path)
    assert path.read_bytes() == before


def test_two_key_files_hold_different_keys(tmp_path: Path) -> None:
    init_local_keyfile(tmp_path / "a.json")
    init_local_keyfile(tmp_path / "b.json")
    wrapped = LocalKeyFileProvider(tmp_path / "a.json").wrap(b"k" * 32)
    with pytest.raises(Exception, match="does not authenticate"):
        LocalKeyFileProvider(tmp_path / "b.json").unwrap(wrapped)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o602, 0o620])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kek.json"
    init_local_keyfile(path)
    path.chmod(mode)
    with pytest.raises(KeyFilePermissionError, match="chmod 600"):
        LocalKeyFileProvider(path)


def test_owner_read_only_key_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    init_local_keyfile(path)
    path.chmod(0o400)
    assert LocalKeyFileProvider(path).current_version == "v1"


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileFormatError, match="not found"):
        LocalKeyFileProvider(tmp_path / "absent.json")


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "{}",
        '{"format": "gateway.kek-file.v1", "versions": []}',
        '{"format": "gateway.kek-file.v1", "versions": [{"version": "v1", "state": "current",'
        ' "key": "c2hvcnQ="}]}',
        '{"format": "gateway.kek-file.v1", "versions": [{"version": "v2", "state": "current",'
        ' "key": "' + base64.b64encode(b"k" * 32).decode() + '"}]}',
        '{"format": "gateway.kek-file.v1", "versions": [{"version": "v1", "state": "retired"}]}',
    ],
)
def test_invalid_key_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "kek.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    with pytest.raises(KeyFileFormatError):
        LocalKeyFileProvider(path)


def test_rotation_keeps_the_file_0600_and_erases_retired_key_bytes(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    init_local_keyfile(path)
    old_key = json.loads(path.read_text(encoding="utf-8"))["versions"][0]["key"]
    provider = LocalKeyFileProvider(path)
    provider.create_version()
    assert _mode(path) == 0o600
    provider.retire_version("v1")
    assert _mode(path) == 0o600
    text = path.read_text(encoding="utf-8")
    assert old_key not in text
    states = [entry["state"] for entry in json.loads(text)["versions"]]
    assert states == ["retired", "current"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_repr_does_not_show_key_material(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    init_local_keyfile(path)
    key = json.loads(path.read_text(encoding="utf-8"))["versions"][0]["key"]
    provider = LocalKeyFileProvider(path)
    assert key not in repr(provider)
    assert "blob=<" in repr(provider.wrap(b"k" * 32))
