"""Errors raised by the key layer: KEK providers, field ciphers and blind indexes.

```
KeysError
 ├── CiphertextError                a field ciphertext cannot be opened
 │    ├── MalformedCiphertextError   not a "gw1.<key id>.<payload>" string
 │    ├── WrongDataKeyError          sealed under another data key (e.g. copied from another record)
 │    └── CiphertextContextError     does not authenticate here: tampered, or moved to another
 │                                   record / field / schema version / force
 ├── KekError                       the key encryption key cannot do what was asked
 │    ├── KekVersionUnknownError     no such KEK version was ever created
 │    ├── KekVersionRetiredError     the KEK version was retired: keys wrapped under it are gone
 │    ├── KekRetirementRefusedError  retiring the current version would leave nothing to wrap with
 │    └── KeyUnwrapError             a wrapped key does not authenticate under its KEK version
 └── KeyStoreError                  the KEK store itself is misconfigured
      ├── KeyFilePermissionError     local key file readable by group or others
      ├── KeyFileFormatError         local key file exists but is not a valid key file
      ├── Pkcs11ConfigError          PKCS#11 module, token or PIN cannot be used
      └── KekUnavailableError        the token went away while serving (removed, finalised)
```

Messages name key ids, versions, record ids and pointers only: never key bytes, PINs or values.
"""

from __future__ import annotations


class KeysError(Exception):
    """Root of every error raised by `gateway.keys`."""


class CiphertextError(KeysError):
    """A field ciphertext cannot be opened in the context given."""


class MalformedCiphertextError(CiphertextError):
    """The string is not a field ciphertext this version of the gateway understands."""


class WrongDataKeyError(CiphertextError):
    """The ciphertext names a different data key from the one supplied."""


class CiphertextContextError(CiphertextError):
    """Authentication failed: the ciphertext was altered or belongs to another record or field."""


class KekError(KeysError):
    """The key encryption key cannot perform the requested operation."""


class KekVersionUnknownError(KekError):
    """No KEK version by that name exists in this provider."""


class KekVersionRetiredError(KekError):
    """The KEK version was retired; anything still wrapped under it is unrecoverable by design."""


class KekRetirementRefusedError(KekError):
    """The current KEK version cannot be retired (create a new version first)."""


class KeyUnwrapError(KekError):
    """A wrapped key failed authentication under the KEK version it names."""


class KeyStoreError(KeysError):
    """The key store (file or token) is unusable as configured."""


class KeyFilePermissionError(KeyStoreError):
    """The local key file is readable or writable by group or others (must be mode 0600)."""


class KeyFileFormatError(KeyStoreError):
    """The local key file is missing, already exists when creating, or is not valid."""


class Pkcs11ConfigError(KeyStoreError):
    """The PKCS#11 module, token or user PIN cannot be used."""


class KekUnavailableError(KeyStoreError):
    """The KEK's token stopped answering while the node runs: nothing can be wrapped or opened."""
