"""Turning a validated record into what the node stores, and back.

Which values are encrypted and which feed a blind index comes from the schema alone
(`schemas.walk_fields`): storage has no list of its own. Each sensitive value is sealed under the
record's data key, bound to force, record id, JSON pointer and schema version; each indexed value
yields HMAC tags under this force's index keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

import orjson

from gateway.keys.blind_index import IndexKeyring, normalised_terms
from gateway.keys.fields import FieldCipher, is_field_ciphertext, new_data_key
from gateway.keys.provider import KekProvider, WrappedKey
from schemas import field_specs
from schemas.enums import ClassificationRank
from schemas.fields import FieldSpec, IndexKind

# Envelope members excluded from the content hash: the node assigns them.
_NODE_ASSIGNED = ("version",)


@dataclass(frozen=True)
class IndexView:
    """The blind-index key versions as this process last read them (gateway/records/index_versions).

    Searches use `active`; writers tag every value under each of `writable` (the active version,
    a version being built by a re-index, and a previous version not yet retired)."""

    active: int
    writable: tuple[int, ...]
    rings: dict[int, IndexKeyring]

    @property
    def newest(self) -> int:
        return max(self.writable)


class NodeKeys:
    """This node's keys as the record layer needs them.

    `view` is replaced as a whole (never mutated) when the index versions change, so a batch
    protected in a worker thread sees one consistent set of index keys."""

    __slots__ = ("force", "kek", "view")

    def __init__(
        self, force: str, kek: KekProvider, index: IndexKeyring, index_version: int = 1
    ) -> None:
        self.force = force
        self.kek = kek
        self.view = IndexView(
            active=index_version, writable=(index_version,), rings={index_version: index}
        )

    @property
    def index(self) -> IndexKeyring:
        """The keyring searches use (the active version's)."""
        return self.view.rings[self.view.active]

    @property
    def index_version(self) -> int:
        return self.view.active


@dataclass
class ProtectedRecord:
    record_id: str
    kind: str
    schema_version: str
    # The stored document: a dict, or its JSON text when sealed by a bulk-load worker.
    document: dict[str, Any] | orjson.Fragment
    data_key_id: str
    wrapped_key: WrappedKey | None  # None when an existing data key is reused
    terms: list[tuple[str, bytes, int]]  # (term kind, tag, index version)
    policy_attrs: dict[str, Any]
    class_key: str
    classification_rank: int
    handling_code: str
    next_review: date | None
    content_sha256: str


def _stable_json(value: Any) -> bytes:
    # Only ever compared with itself on this node (change detection, class keys), so sorted-key
    # JSON is enough here; RFC 8785 is kept for what is signed or hashed across nodes.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _copy(record: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = orjson.loads(orjson.dumps(record))
    return copied


@dataclass(frozen=True)
class _Target:
    tokens: tuple[str, ...]  # generic JSON pointer tokens, "*" for list items
    spec: FieldSpec


@cache
def _protection_plan(kind: str) -> tuple[_Target, ...]:
    """The fields of a kind that are encrypted or indexed, from the schema's declarations.

    Computed once per kind, so protecting a record visits only those fields rather than walking
    every leaf (`schemas.walk_fields`), which matters at bulk-load rates."""
    return tuple(
        _Target(tuple(spec.path[1:].split("/")), spec)
        for spec in field_specs(kind)
        if spec.sensitive or spec.index is not None
    )


def _expand(data: Any, tokens: tuple[str, ...]) -> list[tuple[Any, Any, str]]:
    """(container, key, concrete pointer) of every present value at a generic path, in document
    order. Level by level rather than a recursive generator: this runs for every protected
    field of every record, and the generator frames cost more than the lookups."""
    frontier: list[tuple[Any, str]] = [(data, "")]
    found: list[tuple[Any, Any, str]] = []
    last = len(tokens) - 1
    for depth, head in enumerate(tokens):
        deeper: list[tuple[Any, str]] = []
        for node, pointer in frontier:
            if head == "*":
                if not isinstance(node, list):
                    continue
                items: Iterable[tuple[Any, Any]] = enumerate(node)
            else:
                if not isinstance(node, dict) or head not in node:
                    continue
                items = ((head, node[head]),)
            for key, value in items:
                here = f"{pointer}/{key}"
                if depth == last:
                    found.append((node, key, here))
                elif value is not None:
                    deeper.append((value, here))
        if not deeper and depth < last:
            return found
        frontier = deeper
    return found


def content_sha256(record: dict[str, Any]) -> str:
    """Hash of the record as the force sent it, without what the node assigns."""
    trimmed = {k: v for k, v in record.items() if k not in _NODE_ASSIGNED}
    return hashlib.sha256(_stable_json(trimmed)).hexdigest()


def classification_rank(record: dict[str, Any]) -> int:
    classification = record.get("classification") or {}
    tier = classification.get("tier")
    if tier == "TOP_SECRET":
        return int(ClassificationRank.TOP_SECRET)
    if tier == "SECRET":
        return int(ClassificationRank.SECRET)
    if classification.get("sensitive"):
        return int(ClassificationRank.OFFICIAL_SENSITIVE)
    return int(ClassificationRank.OFFICIAL)


def policy_attributes(record: dict[str, Any]) -> dict[str, Any]:
    """The record attributes policies read (never sensitive values), as stored in the clear."""
    grading = record.get("grading") or {}
    retention = record.get("retention") or {}
    return {
        "kind": record["kind"],
        "owner_force": record["owner_force"],
        "classification_rank": classification_rank(record),
        "handling": grading.get("handling") or "P",
        "has_conditions": bool(grading.get("conditions")),
        "condition_forces": sorted(grading.get("condition_forces") or []),
        "subject_categories": sorted(record.get("subject_categories") or []),
        "sensitive_categories": sorted(record.get("sensitive_categories") or []),
        "next_review": retention.get("next_review"),
        "retain_decision": bool(retention.get("retain_decision")),
    }


def class_key_of(attrs: dict[str, Any]) -> str:
    """Key of the equivalence class (everything but the review date, which is compared per day)."""
    static = {k: v for k, v in attrs.items() if k != "next_review"}
    return hashlib.sha256(_stable_json(static)).hexdigest()[:32]


# Blind terms already computed in one batch, by (index kind, value, index versions): names,
# towns and numbers recur across the records of a bulk load, and normalising them (phonenumbers,
# Metaphone) costs more than the HMAC. Built per batch (one bulk upload at most) and dropped
# with it, so no plaintext identifier outlives the request that carried it; the tags are those
# computed without it. The index versions are part of the key, so a view that changed between
# two chunks never reuses the other view's tags.
TermMemo = dict[tuple[IndexKind, str, tuple[int, ...]], tuple[tuple[str, bytes, int], ...]]


def _value_terms(
    index_kind: IndexKind, value: str, view: IndexView, versions: tuple[int, ...]
) -> tuple[tuple[str, bytes, int], ...]:
    pairs = normalised_terms(index_kind, value)
    out: list[tuple[str, bytes, int]] = []
    for version in versions:
        ring = view.rings[version]
        for term_kind, normalised in pairs:
            out.append(
                (term_kind, ring.tag_bytes(index_kind, term_kind, normalised, version), version)
            )
    return tuple(out)


def _tag_value(
    terms: list[tuple[str, bytes, int]],
    index_kind: IndexKind,
    value: str,
    view: IndexView,
    versions: tuple[int, ...],
    memo: TermMemo | None = None,
) -> None:
    if memo is None:
        terms.extend(_value_terms(index_kind, value, view, versions))
        return
    key = (index_kind, value, versions)
    found = memo.get(key)
    if found is None:
        found = memo[key] = _value_terms(index_kind, value, view, versions)
    terms.extend(found)


def index_terms(
    record: dict[str, Any],
    view: IndexView,
    versions: Iterable[int],
    *,
    memo: TermMemo | None = None,
    opened: Callable[[Any, str], Any] | None = None,
) -> list[tuple[str, bytes, int]]:
    """The blind terms of a plaintext record under the given index versions (re-indexing).
    `memo`: share normalised terms across the records of one batch (see `TermMemo`).
    `opened(value, pointer)`: what to index for a stored value (decrypts a stored document)."""
    wanted = tuple(versions)
    terms: list[tuple[str, bytes, int]] = []
    for target in _protection_plan(str(record["kind"])):
        if target.spec.index is None:
            continue
        for parent, key, pointer in _expand(record, target.tokens):
            value = parent[key] if opened is None else opened(parent[key], pointer)
            if isinstance(value, str):
                _tag_value(terms, target.spec.index, value, view, wanted, memo)
    return list(dict.fromkeys(terms))


def protect_record(
    record: dict[str, Any],
    keys: NodeKeys,
    *,
    reuse_key: tuple[str, bytes] | None = None,
    view: IndexView | None = None,
    memo: TermMemo | None = None,
) -> ProtectedRecord:
    """Encrypt the sensitive values of a validated record (plain JSON form) and index it under
    every writable index version of `view` (default: the keys' current view). `memo`: share
    normalised terms across the records of one batch (see `TermMemo`)."""
    if reuse_key is None:
        key_id, data_key = new_data_key()
        wrapped: WrappedKey | None = keys.kek.wrap(data_key)
    else:
        key_id, data_key = reuse_key
        wrapped = None
    return _seal(
        record,
        force=keys.force,
        key_id=key_id,
        data_key=data_key,
        wrapped=wrapped,
        view=view or keys.view,
        memo=memo,
    )


def seal_new_record(
    record: dict[str, Any], *, force: str, view: IndexView, memo: TermMemo | None = None
) -> tuple[ProtectedRecord, bytes]:
    """Protect a record as a new one under a fresh data key, returned unwrapped beside it.

    For bulk-load worker processes (gateway/records/parallel.py), which hold no KEK: the node
    process wraps the key (`parallel.with_wrapped_key`) before anything is stored. The record is
    sealed in place (it becomes the stored document): a worker has no further use for it."""
    key_id, data_key = new_data_key()
    protected = _seal(
        record,
        force=force,
        key_id=key_id,
        data_key=data_key,
        wrapped=None,
        view=view,
        memo=memo,
        in_place=True,
    )
    return protected, data_key


def _seal(
    record: dict[str, Any],
    *,
    force: str,
    key_id: str,
    data_key: bytes,
    wrapped: WrappedKey | None,
    view: IndexView,
    memo: TermMemo | None,
    in_place: bool = False,
) -> ProtectedRecord:
    writable = tuple(view.writable)
    cipher = FieldCipher(data_key, key_id)
    record_id = str(record["id"])
    schema_version = str(record["schema_version"])
    # What is computed from the plain record comes first, for a record sealed in place.
    attrs = policy_attributes(record)
    review = attrs["next_review"]
    content_hash = content_sha256(record)
    document = record if in_place else _copy(record)
    terms: list[tuple[str, bytes, int]] = []
    for target in _protection_plan(str(record["kind"])):
        spec = target.spec
        for parent, key, pointer in _expand(document, target.tokens):
            value = parent[key]
            if value is None or isinstance(value, dict | list):
                continue
            if spec.index is not None and isinstance(value, str):
                _tag_value(terms, spec.index, value, view, writable, memo)
            if spec.sensitive:
                parent[key] = cipher.encrypt(
                    value,
                    force=force,
                    record_id=record_id,
                    pointer=pointer,
                    schema_version=schema_version,
                )
    return ProtectedRecord(
        record_id=record_id,
        kind=str(record["kind"]),
        schema_version=schema_version,
        document=document,
        data_key_id=key_id,
        wrapped_key=wrapped,
        terms=list(dict.fromkeys(terms)),
        policy_attrs=attrs,
        class_key=class_key_of(attrs),
        classification_rank=int(attrs["classification_rank"]),
        handling_code=str(attrs["handling"]),
        next_review=date.fromisoformat(review) if review else None,
        content_sha256=content_hash,
    )


def reveal_record(
    document: dict[str, Any], *, data_key: bytes, key_id: str, force: str
) -> dict[str, Any]:
    """Decrypt every sensitive field of a stored document. Raises if any fails to open."""
    record = _copy(document)
    cipher = FieldCipher(data_key, key_id)
    record_id = str(document["id"])
    schema_version = str(document["schema_version"])
    for target in _protection_plan(str(document["kind"])):
        if not target.spec.sensitive:
            continue
        for parent, key, pointer in _expand(record, target.tokens):
            token = parent[key]
            if not is_field_ciphertext(token):
                continue
            parent[key] = cipher.decrypt(
                token,
                force=force,
                record_id=record_id,
                pointer=pointer,
                schema_version=schema_version,
            )
    return record


def stored_index_terms(
    document: dict[str, Any],
    *,
    data_key: bytes,
    key_id: str,
    force: str,
    view: IndexView,
    versions: Iterable[int],
) -> list[tuple[str, bytes, int]]:
    """The blind terms of a stored record under the given index versions (re-indexing).

    Decrypts the record here and returns only its tags, never its content: re-indexing is key
    management, not a read, and record content leaves this module only through the enforcement
    point (gateway/search/service.py; tests/architecture/test_enforcement.py). Only the indexed
    fields are decrypted."""
    cipher = FieldCipher(data_key, key_id)
    record_id = str(document["id"])
    schema_version = str(document["schema_version"])

    def opened(value: Any, pointer: str) -> Any:
        if not is_field_ciphertext(value):
            return value
        return cipher.decrypt(
            value,
            force=force,
            record_id=record_id,
            pointer=pointer,
            schema_version=schema_version,
        )

    return index_terms(document, view, versions, opened=opened)
