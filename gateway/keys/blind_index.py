"""Blind indexes: keyed, truncated HMAC tags of normalised identifiers, searched blind.

Key hierarchy: a 32-byte index root secret per node (stored wrapped by the KEK, like a data key)
-> HKDF-SHA256 per (force, index kind, key version) -> HMAC-SHA256 over
"<term kind> NUL <normalised value>", truncated to 16 bytes and hex-encoded.

Why 16 bytes: a tag only has to make accidental collisions negligible among the millions of
terms one force holds (2^-128 per pair); any collision is harmless anyway because candidate
records are decrypted and the value re-checked before anything is returned. A shorter tag would
leak less to someone holding the index table (more values share a tag), but at 8 bytes
collisions start to cost decryptions in large forces; 16 keeps the table compact and exact.

Index keys never leave the node: a partner receiving a query term computes its own tags with
its own keyring. Derived keys are memoised on the keyring for the process lifetime; they are
node-level secrets (unlike per-record data keys) and deleting a record deletes its tags.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import date
from typing import NamedTuple

import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.keys.normalise import (
    name_parts,
    normalise_dob,
    normalise_line_name,
    normalise_phone,
    normalise_postcode,
    normalise_vrm,
    phones_in_text,
    phonetic_code,
    postcode_district,
)
from schemas.fields import IndexKind

INDEX_ROOT_BYTES = 32
INDEX_KEY_BYTES = 32
TAG_BYTES = 16


class IndexTerm(NamedTuple):
    """One searchable term of a value: what kind of term it is and its blind tag (hex)."""

    term_kind: str
    tag_hex: str


def new_index_root() -> bytes:
    """A fresh index root secret (wrap it with the KEK provider before storing it)."""
    return secrets.token_bytes(INDEX_ROOT_BYTES)


def _name_terms(value: str) -> list[tuple[str, str]]:
    parts = name_parts(value)
    if not parts:
        return []
    terms: list[tuple[str, str]] = []
    # Sorted so that swapped given and family names ("Ali Mohammed" / "Mohammed Ali") match.
    terms.append(("name_full", " ".join(sorted(parts))))
    codes = [code for code in (phonetic_code(part) for part in parts) if code is not None]
    if codes:
        terms.append(("name_full_phonetic", " ".join(sorted(codes))))
    for part in parts:
        terms.append(("name_part", part))
        code = phonetic_code(part)
        if code is not None:
            terms.append(("name_part_phonetic", code))
    return terms


def _single(
    term_kind: str, normalise: Callable[[str], str | None]
) -> Callable[[str], list[tuple[str, str]]]:
    def terms(value: str) -> list[tuple[str, str]]:
        normalised = normalise(value)
        return [] if normalised is None else [(term_kind, normalised)]

    return terms


def _postcode_terms(value: str) -> list[tuple[str, str]]:
    full = normalise_postcode(value)
    district = postcode_district(value)
    terms = [] if full is None else [("postcode", full)]
    if district is not None:
        terms.append(("postcode_district", district))
    return terms


def _dob_terms(value: str | date) -> list[tuple[str, str]]:
    normalised = normalise_dob(value)
    return [] if normalised is None else [("dob", normalised)]


def _phones_in_text_terms(value: str) -> list[tuple[str, str]]:
    return [("phone", number) for number in phones_in_text(value)]


# Index kinds whose terms share another kind's key, so that they meet the same queries: a number
# found in free text must match a search for that phone number.
KEYED_AS: dict[IndexKind, IndexKind] = {IndexKind.PHONE_IN_TEXT: IndexKind.PHONE}

_TERM_BUILDERS: dict[IndexKind, Callable[[str], list[tuple[str, str]]]] = {
    IndexKind.PHONE: _single("phone", normalise_phone),
    IndexKind.PHONE_IN_TEXT: _phones_in_text_terms,
    IndexKind.VRM: _single("vrm", normalise_vrm),
    IndexKind.NAME: _name_terms,
    IndexKind.POSTCODE: _postcode_terms,
    IndexKind.LINE_NAME: _single("line_name", normalise_line_name),
}


def normalised_terms(index_kind: IndexKind | str, value: str | date) -> list[tuple[str, str]]:
    """(term kind, normalised text) pairs a value yields, before keying; duplicates removed."""
    kind = IndexKind(index_kind)
    if kind is IndexKind.DOB:
        raw = _dob_terms(value)
    elif isinstance(value, str):
        raw = _TERM_BUILDERS[kind](value)
    else:
        raise TypeError(f"{kind.value} index values are strings")
    return list(dict.fromkeys(raw))


class IndexKeyring:
    """Blind-index keys of one force, derived from the node's index root secret."""

    __slots__ = ("_force", "_keys", "_root")

    def __init__(self, root_secret: bytes, force: str) -> None:
        if len(root_secret) != INDEX_ROOT_BYTES:
            raise ValueError(f"an index root secret is {INDEX_ROOT_BYTES} bytes")
        if not force:
            raise ValueError("a force code is required")
        self._root = bytes(root_secret)
        self._force = force
        self._keys: dict[tuple[IndexKind | str, int], bytes] = {}

    def __repr__(self) -> str:
        return f"IndexKeyring(force={self._force!r})"

    @property
    def force(self) -> str:
        return self._force

    def key_for(self, index_kind: IndexKind | str, version: int) -> bytes:
        """The HMAC key for one index kind and key version (HKDF-SHA256 from the root)."""
        # Memoised under the kind as given (IndexKind members hash and compare as their values),
        # so the hot path is one dict lookup.
        cached = self._keys.get((index_kind, version))
        if cached is not None:
            return cached
        kind = KEYED_AS.get(IndexKind(index_kind), IndexKind(index_kind)).value
        if version < 1:
            raise ValueError("index key versions start at 1")
        info = b"gateway.blind-index.v1|" + rfc8785.dumps(
            {"force": self._force, "index_kind": kind, "version": version}
        )
        key = HKDF(algorithm=hashes.SHA256(), length=INDEX_KEY_BYTES, salt=None, info=info).derive(
            self._root
        )
        self._keys[(str(IndexKind(index_kind).value), version)] = key
        return key

    def tag_bytes(
        self, index_kind: IndexKind | str, term_kind: str, normalised: str, version: int
    ) -> bytes:
        """The blind tag of one already-normalised term, as stored."""
        message = term_kind.encode("utf-8") + b"\x00" + normalised.encode("utf-8")
        return hmac.digest(self.key_for(index_kind, version), message, "sha256")[:TAG_BYTES]

    def tag(
        self, index_kind: IndexKind | str, term_kind: str, normalised: str, version: int
    ) -> str:
        """The hex blind tag of one already-normalised term."""
        return self.tag_bytes(index_kind, term_kind, normalised, version).hex()

    def terms(
        self, index_kind: IndexKind | str, value: str | date, *, version: int = 1
    ) -> list[IndexTerm]:
        """Every blind term a value yields (none when it cannot be normalised)."""
        return [
            IndexTerm(term_kind, self.tag(index_kind, term_kind, normalised, version))
            for term_kind, normalised in normalised_terms(index_kind, value)
        ]


def blind_index_terms(
    keyring: IndexKeyring, index_kind: IndexKind | str, value: str | date, *, version: int = 1
) -> list[IndexTerm]:
    """Blind terms of `value` under `keyring`: what storage writes and what a search looks up."""
    return keyring.terms(index_kind, value, version=version)
