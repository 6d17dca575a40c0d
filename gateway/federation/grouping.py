"""Grouping the same person, phone, vehicle or line found in several forces' records.

Records are never merged: a group only lists which force's record carries the identifier, so each
force's record and grading stay separate. Keys are normalised identifiers (E.164 phone numbers,
registration marks, line names, and a person's normalised full name with date of birth).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from gateway.federation.payloads import ForceResult, PersonGroup
from gateway.keys.blind_index import normalised_terms
from schemas import walk_fields
from schemas.fields import IndexKind

_SINGLE_KEYS = {
    IndexKind.PHONE: "phone",
    IndexKind.PHONE_IN_TEXT: "phone",
    IndexKind.VRM: "vrm",
    IndexKind.LINE_NAME: "line_name",
}


def _parent(pointer: str) -> str:
    return pointer.rsplit("/", 1)[0]


def record_keys(record: dict[str, Any]) -> set[str]:
    """The normalised identifiers of one (policy-filtered) record.

    A person's key joins each recorded name (its given and family parts together, so swapped or
    transliterated spellings that sound alike meet) with the record's date of birth."""
    keys: set[str] = set()
    name_parts: dict[str, list[str]] = defaultdict(list)
    dobs: set[str] = set()
    try:
        values = list(walk_fields(record))
    except Exception:
        # A partner's filtered record that our schema cannot walk is shown, just not grouped.
        return keys
    for fv in values:
        index = fv.spec.index
        if index is None or not isinstance(fv.value, str):
            continue
        if index in _SINGLE_KEYS:
            for kind, value in normalised_terms(index, fv.value):
                if kind == _SINGLE_KEYS[index]:
                    keys.add(f"{kind}:{value}")
        elif index is IndexKind.NAME:
            # Name parts of one name entry share a parent (e.g. /body/names/0).
            name_parts[_parent(fv.pointer)].append(fv.value)
        elif index is IndexKind.DOB:
            dobs.update(value for kind, value in normalised_terms(index, fv.value) if kind == "dob")
    for parts in name_parts.values():
        for kind, value in normalised_terms(IndexKind.NAME, " ".join(parts)):
            if kind == "name_full_phonetic":
                keys.update(f"person:{value}|{dob}" for dob in dobs)
    return keys


def group_records(results: Sequence[ForceResult]) -> list[PersonGroup]:
    """Identifiers seen in records of at least two forces, with the records carrying them."""
    holders: dict[str, dict[tuple[str, str], None]] = defaultdict(dict)
    for result in results:
        for hit in result.hits:
            record = hit.get("record")
            if not isinstance(record, dict):
                continue
            for key in record_keys(record):
                holders[key][(result.force, str(hit.get("record_id")))] = None
    groups = []
    for key, refs in sorted(holders.items()):
        forces = sorted({force for force, _ in refs})
        if len(forces) < 2:
            continue
        groups.append(
            PersonGroup(
                key=key,
                forces=forces,
                records=[{"force": f, "record_id": r} for f, r in refs],
            )
        )
    return groups
