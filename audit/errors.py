"""The audit library's exceptions, rooted at one class so callers can catch everything it raises.

::

    AuditError
    ├── TreeSizeError            (also ValueError) a size or index outside the tree
    ├── ProofError               a Merkle proof does not prove what it claims
    │   ├── InclusionProofError
    │   └── ConsistencyProofError
    ├── CheckpointError          a signed note is malformed, for another log, or badly signed
    │   └── CosignatureError     a witness cosignature is missing, malformed or badly signed
    ├── EntryError               bytes that are not a well-formed audit entry
    └── SealingError             a sealed payload cannot be opened
        └── PayloadShredded      its key was destroyed at the end of retention
"""

from __future__ import annotations


class AuditError(Exception):
    """Root of every exception raised by the audit library."""


class TreeSizeError(AuditError, ValueError):
    """A tree size or leaf index is outside the range the operation allows."""


class ProofError(AuditError):
    """A Merkle proof failed to verify."""


class InclusionProofError(ProofError):
    """An inclusion proof does not place the leaf at the index in the tree with that root."""


class ConsistencyProofError(ProofError):
    """A consistency proof does not show the older tree is a prefix of the newer one."""


class CheckpointError(AuditError):
    """A checkpoint note is malformed, names another log, or its signature does not verify."""


class CosignatureError(CheckpointError):
    """A witness cosignature is missing, malformed or does not verify."""


class EntryError(AuditError):
    """Bytes that do not decode to a well-formed audit entry."""


class SealingError(AuditError):
    """A sealed payload could not be opened (wrong context, corrupted ciphertext)."""


class PayloadShredded(SealingError):
    """The key that sealed this payload has been destroyed; the plaintext is gone for good."""
