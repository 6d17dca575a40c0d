"""Canonical JSON (RFC 8785, JSON Canonicalization Scheme) for hashing and signing.

Records and audit entries are hashed and signed over these bytes, so every node must produce the
same bytes for the same data; the `rfc8785` library implements the scheme.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785
from pydantic import BaseModel


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 bytes of plain JSON data, or of a pydantic model in its JSON form."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return rfc8785.dumps(obj)


def canonical_sha256(obj: Any) -> str:
    """Hex SHA-256 of the canonical JSON bytes (a content fingerprint for records and entries)."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()
