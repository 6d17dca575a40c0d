"""The `local` KEK provider: KEK versions kept in a JSON key file (mode 0600) on the node.

This is the embedded default for development and small deployments. Each version is 32 random
bytes; keys are wrapped with AES-256-GCM under the current version with the version name as
associated data.

Why AES-GCM rather than AES key wrap (RFC 3394/5649): key wrap has no associated data, so the
version label stored beside a blob could not be authenticated; GCM authenticates it, is the same
primitive the field ciphers use, and is what the PKCS#11 provider runs inside the token, so both
providers behave identically. A random 96-bit nonce per wrap is safe far beyond the number of
data keys one KEK version will ever wrap (the NIST bound is 2^32 messages per key).

File layout (written atomically, never edited in place):

    {"format": "gateway.kek-file.v1", "algorithm": "AES-256-GCM",
     "versions": [{"version": "v1", "state": "retired", "created_at": "...", "retired_at": "..."},
                  {"version": "v2", "state": "current", "created_at": "...", "key": "<base64>"}]}
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.keys.errors import (
    KekRetirementRefusedError,
    KekVersionRetiredError,
    KekVersionUnknownError,
    KeyFileFormatError,
    KeyFilePermissionError,
    KeyStoreError,
    KeyUnwrapError,
)
from gateway.keys.provider import (
    KekVersionInfo,
    KekVersionState,
    WrappedKey,
    version_name,
    version_number,
    wrap_associated_data,
)

KEY_FILE_FORMAT = "gateway.kek-file.v1"
_KEK_BYTES = 32
_NONCE_BYTES = 12


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_permissions(path: Path) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyFileFormatError(f"key file not found: {path}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileFormatError(f"key file is not a regular file: {path}")
    if info.st_mode & 0o077:
        raise KeyFilePermissionError(
            f"key file {path} has mode {stat.S_IMODE(info.st_mode):04o}; it must not be "
            "accessible by group or others (chmod 600)"
        )


def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    """Replace `path` with `document`, created 0600 (never briefly world-readable)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    payload = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def init_local_keyfile(path: Path) -> None:
    """Create a new key file holding KEK version v1. Refuses to overwrite an existing file.

    Overwriting would silently destroy the KEK and with it every record on the node, so an
    existing file is an error the operator must resolve by hand.
    """
    path = Path(path)
    if path.exists():
        raise KeyFileFormatError(f"key file already exists, refusing to overwrite: {path}")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_atomically(
        path,
        {
            "format": KEY_FILE_FORMAT,
            "algorithm": "AES-256-GCM",
            "versions": [_new_version_entry(1)],
        },
    )


def _new_version_entry(number: int) -> dict[str, Any]:
    return {
        "version": version_name(number),
        "state": KekVersionState.CURRENT.value,
        "created_at": _now(),
        "key": base64.b64encode(secrets.token_bytes(_KEK_BYTES)).decode("ascii"),
    }


def _parse(path: Path, document: Any) -> list[dict[str, Any]]:
    """Validate the document's shape; returns the version entries, oldest first."""
    bad = KeyFileFormatError(f"not a valid gateway key file: {path}")
    if not isinstance(document, dict) or document.get("format") != KEY_FILE_FORMAT:
        raise bad
    entries = document.get("versions")
    if not isinstance(entries, list) or not entries:
        raise bad
    currents = 0
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or entry.get("version") != version_name(position):
            raise bad
        state = entry.get("state")
        if state not in {s.value for s in KekVersionState}:
            raise bad
        if state == KekVersionState.CURRENT.value:
            currents += 1
        if state != KekVersionState.RETIRED.value:
            key = entry.get("key")
            try:
                raw = base64.b64decode(key, validate=True) if isinstance(key, str) else b""
            except binascii.Error:
                raise bad from None
            if len(raw) != _KEK_BYTES:
                raise bad
    if currents != 1 or entries[-1]["state"] != KekVersionState.CURRENT.value:
        raise bad
    return entries


class LocalKeyFileProvider:
    """KEK versions from a 0600 JSON key file.

    Loaded at start; read again when a wrapped key names a newer version than known (another
    instance rotated) and before each rotation step, which rewrites the file atomically. Two
    rotations must not run at once: `gateway keys rotate` is a single operator command.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._closed = False
        self._document: dict[str, Any] = {}
        self._entries: list[dict[str, Any]] = []
        self._ciphers: dict[str, AESGCM] = {}
        self._reload()

    def _reload(self) -> None:
        """Read the key file again (it may have been rotated by another process or instance)."""
        _check_permissions(self._path)
        try:
            document = json.loads(self._path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeyFileFormatError(f"not a valid gateway key file: {self._path}") from None
        self._entries = _parse(self._path, document)
        self._document = document
        self._load_ciphers()

    def _load_ciphers(self) -> None:
        self._ciphers = {
            entry["version"]: AESGCM(base64.b64decode(entry["key"]))
            for entry in self._entries
            if entry["state"] != KekVersionState.RETIRED.value
        }

    def __repr__(self) -> str:
        return f"LocalKeyFileProvider(path={str(self._path)!r}, current={self.current_version!r})"

    @property
    def current_version(self) -> str:
        return str(self._entries[-1]["version"])

    def _cipher_for(self, version: str) -> AESGCM:
        if self._closed:
            raise KeyStoreError("the local KEK provider has been closed")
        cipher = self._ciphers.get(version)
        if cipher is None and version_number(version) > len(self._entries):
            with self._lock:
                self._reload()
            cipher = self._ciphers.get(version)
        if cipher is not None:
            return cipher
        number = version_number(version)
        if number <= len(self._entries):
            raise KekVersionRetiredError(f"KEK version {version} is retired")
        raise KekVersionUnknownError(f"KEK version {version} does not exist")

    def wrap(self, data_key: bytes) -> WrappedKey:
        if not data_key:
            raise ValueError("refusing to wrap an empty key")
        version = self.current_version
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._cipher_for(version).encrypt(
            nonce, bytes(data_key), wrap_associated_data(version)
        )
        return WrappedKey(kek_version=version, blob=nonce + sealed)

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        cipher = self._cipher_for(wrapped.kek_version)
        nonce, sealed = wrapped.blob[:_NONCE_BYTES], wrapped.blob[_NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, sealed, wrap_associated_data(wrapped.kek_version))
        except (InvalidTag, ValueError):
            raise KeyUnwrapError(
                f"wrapped key does not authenticate under KEK version {wrapped.kek_version}"
            ) from None

    def create_version(self) -> str:
        with self._lock:
            self._reload()
            entries = [dict(entry) for entry in self._entries]
            entries[-1]["state"] = KekVersionState.ACTIVE.value
            entries.append(_new_version_entry(len(entries) + 1))
            self._commit(entries)
            return self.current_version

    def retire_version(self, version: str) -> None:
        with self._lock:
            self._reload()
            number = version_number(version)
            if number > len(self._entries):
                raise KekVersionUnknownError(f"KEK version {version} does not exist")
            if version == self.current_version:
                raise KekRetirementRefusedError(
                    f"KEK version {version} is current; create a new version before retiring it"
                )
            entries = [dict(entry) for entry in self._entries]
            entry = entries[number - 1]
            if entry["state"] == KekVersionState.RETIRED.value:
                return
            entry["state"] = KekVersionState.RETIRED.value
            entry["retired_at"] = _now()
            del entry["key"]
            self._commit(entries)

    def _commit(self, entries: list[dict[str, Any]]) -> None:
        document = {**self._document, "versions": entries}
        _write_atomically(self._path, document)
        self._document = document
        self._entries = entries
        self._load_ciphers()

    def versions(self) -> list[KekVersionInfo]:
        return [
            KekVersionInfo(version=str(entry["version"]), state=KekVersionState(entry["state"]))
            for entry in self._entries
        ]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._ciphers = {}
