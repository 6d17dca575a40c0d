"""Key management for a force node: KEK providers, field encryption and blind indexes.

- `KekProvider` (local key file or PKCS#11 token) wraps per-record data keys and the index root.
- `FieldCipher` seals each sensitive value under its record's data key ("gw1.<key id>.<...>").
- `IndexKeyring` derives per-force blind-index keys and turns normalised values into tags.

The PKCS#11 provider lives in `gateway.keys.hsm` and is imported from there, so nodes using the
local key file never load a PKCS#11 module.
"""

from gateway.keys.blind_index import (
    IndexKeyring,
    IndexTerm,
    blind_index_terms,
    new_index_root,
    normalised_terms,
)
from gateway.keys.errors import (
    CiphertextContextError,
    CiphertextError,
    KekError,
    KekRetirementRefusedError,
    KekVersionRetiredError,
    KekVersionUnknownError,
    KeyFileFormatError,
    KeyFilePermissionError,
    KeysError,
    KeyStoreError,
    KeyUnwrapError,
    MalformedCiphertextError,
    Pkcs11ConfigError,
    WrongDataKeyError,
)
from gateway.keys.fields import (
    FieldCipher,
    JsonScalar,
    ciphertext_key_id,
    is_field_ciphertext,
    new_data_key,
)
from gateway.keys.local import LocalKeyFileProvider, init_local_keyfile
from gateway.keys.provider import (
    KekProvider,
    KekVersionInfo,
    KekVersionState,
    WrappedKey,
    rewrap,
)

__all__ = [
    "CiphertextContextError",
    "CiphertextError",
    "FieldCipher",
    "IndexKeyring",
    "IndexTerm",
    "JsonScalar",
    "KekError",
    "KekProvider",
    "KekRetirementRefusedError",
    "KekVersionInfo",
    "KekVersionRetiredError",
    "KekVersionState",
    "KekVersionUnknownError",
    "KeyFileFormatError",
    "KeyFilePermissionError",
    "KeyStoreError",
    "KeyUnwrapError",
    "KeysError",
    "LocalKeyFileProvider",
    "MalformedCiphertextError",
    "Pkcs11ConfigError",
    "WrappedKey",
    "WrongDataKeyError",
    "blind_index_terms",
    "ciphertext_key_id",
    "init_local_keyfile",
    "is_field_ciphertext",
    "new_data_key",
    "new_index_root",
    "normalised_terms",
    "rewrap",
]
