"""The key encryption key (KEK) provider interface, wrapped keys and rotation by re-wrapping.

A provider holds a sequence of KEK versions ("v1", "v2", ...). Exactly one is current: `wrap`
always uses it. Older versions stay usable for `unwrap` until retired, which destroys them.
Rotation is: `create_version()`, then `rewrap` every stored wrapped key, then `retire_version`
of the old one. Which keys still need re-wrapping is the caller's bookkeeping (the wrapped-key
table knows each row's `kek_version`), so retiring too early is the caller's responsibility.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from gateway.keys.errors import KekVersionUnknownError

_VERSION = re.compile(r"v([1-9][0-9]{0,8})")


class KekVersionState(StrEnum):
    """Lifecycle of one KEK version."""

    CURRENT = "current"  # wraps new keys and unwraps
    ACTIVE = "active"  # unwraps only (awaiting re-wrap of its keys, then retirement)
    RETIRED = "retired"  # destroyed; nothing wrapped under it can be opened again


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key or secret encrypted under one KEK version (what storage persists)."""

    kek_version: str
    blob: bytes

    def __repr__(self) -> str:
        # The blob is ciphertext, but there is no reason to spray it into logs or tracebacks.
        return f"WrappedKey(kek_version={self.kek_version!r}, blob=<{len(self.blob)} bytes>)"


@dataclass(frozen=True, slots=True)
class KekVersionInfo:
    """One KEK version and its state, as reported by `KekProvider.versions()`."""

    version: str
    state: KekVersionState


@runtime_checkable
class KekProvider(Protocol):
    """Wraps and unwraps keys under the force's KEK; the KEK itself never leaves the provider."""

    @property
    def current_version(self) -> str:
        """The version `wrap` uses."""
        ...

    def wrap(self, data_key: bytes) -> WrappedKey:
        """Encrypt `data_key` under the current KEK version."""
        ...

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        """Decrypt a wrapped key; raises a `KekError` subclass when it cannot."""
        ...

    def create_version(self) -> str:
        """Create a new KEK version and make it current; returns its name."""
        ...

    def retire_version(self, version: str) -> None:
        """Destroy a non-current KEK version for good."""
        ...

    def versions(self) -> list[KekVersionInfo]:
        """Every version ever created, oldest first."""
        ...

    def close(self) -> None:
        """Release sessions or handles; the provider is unusable afterwards."""
        ...


def version_name(number: int) -> str:
    """The canonical name of KEK version `number` (1-based)."""
    if number < 1:
        raise ValueError("KEK version numbers start at 1")
    return f"v{number}"


def version_number(version: str) -> int:
    """Parse a canonical KEK version name; unknown shapes are unknown versions."""
    match = _VERSION.fullmatch(version)
    if match is None:
        raise KekVersionUnknownError(f"not a KEK version name: {version!r}")
    return int(match.group(1))


def wrap_associated_data(version: str) -> bytes:
    """Associated data for wrapping: binds the blob to the version it claims to be under.

    Without it a blob relabelled with another version name would still be tried under the
    wrong key; with it the label itself is authenticated.
    """
    return b"gateway.kek-wrap.v1|" + version.encode("ascii")


def rewrap(wrapped: WrappedKey, provider: KekProvider) -> WrappedKey:
    """Move a wrapped key to the provider's current KEK version (a no-op if already there)."""
    if wrapped.kek_version == provider.current_version:
        return wrapped
    return provider.wrap(provider.unwrap(wrapped))
