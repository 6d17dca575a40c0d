"""Applying a decision to a record: what the caller may actually see.

Field groups are given as generic JSON pointers (RFC 6901 with `*` standing for every item of a
list), e.g. "/body/names/*/family_name" -> identity. General JSON-pointer libraries resolve one
concrete pointer; none expands wildcards, which is what this module needs, so the small walker is
written here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from policies._model import Decision, Obligation, Outcome
from schemas.fields import FieldGroup

WITHHELD_KEY = "withheld"  # top-level key listing the concrete pointers removed from a record
MASK = "***"  # constant, so a mask does not reveal the length of what it hides

# UK postcode: outward code (area + district, e.g. "L1", "B15", "EC1A") then inward code
# (digit + two letters). Written here because it is a two-line domain rule, and the district is
# exactly the outward code.
_POSTCODE = re.compile(r"^\s*([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9][A-Z]{2})\s*$", re.IGNORECASE)
_ISO_DATE = re.compile(r"^([0-9]{4})-[0-9]{2}-[0-9]{2}")


def _unescape(step: str) -> str:
    return step.replace("~1", "/").replace("~0", "~")


def _escape(step: str) -> str:
    return step.replace("~", "~0").replace("/", "~1")


def expand_pointer(document: Any, generic: str) -> Iterator[tuple[str, Any, Any]]:
    """Every concrete match of a generic pointer: (concrete pointer, parent container, key)."""
    steps = [_unescape(t) for t in generic.split("/")[1:]] if generic else []

    def walk(node: Any, index: int, prefix: str) -> Iterator[tuple[str, Any, Any]]:
        step = steps[index]
        last = index == len(steps) - 1
        if isinstance(node, list):
            keys: list[Any] = (
                list(range(len(node)))
                if step == "*"
                else ([int(step)] if step.isdigit() and int(step) < len(node) else [])
            )
        elif isinstance(node, dict):
            keys = list(node) if step == "*" else ([step] if step in node else [])
        else:
            keys = []
        for key in keys:
            here = f"{prefix}/{_escape(str(key))}"
            if last:
                yield here, node, key
            else:
                yield from walk(node[key], index + 1, here)

    if steps:
        yield from walk(document, 0, "")


def _map_leaves(value: Any, change: Callable[[Any], Any]) -> Any:
    if isinstance(value, dict):
        return {k: _map_leaves(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_leaves(v, change) for v in value]
    return change(value)


def _mask(value: Any) -> Any:
    return None if value is None else MASK


def _year_of(value: Any) -> Any:
    if isinstance(value, str):
        found = _ISO_DATE.match(value)
        if found:
            return found.group(1)
    return value


def postcode_district(value: str) -> str | None:
    """The district (outward code) of a UK postcode, upper case; None if it is not a postcode."""
    found = _POSTCODE.match(value)
    return found.group(1).upper() if found else None


def _get(document: Any, pointer: str) -> Any:
    node = document
    for step in (_unescape(t) for t in pointer.split("/")[1:]):
        if isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            return None
    return node


def apply_decision(
    record_json: dict[str, Any],
    decision: Decision,
    field_groups: Mapping[str, FieldGroup],
    *,
    pointer_paths: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """The record as the caller may see it under `decision`.

    - hidden or denied: None (nothing is disclosed, not even that the record exists);
    - pointer: only `id`, `owner_force`, `kind` and `contact` (whom to ask);
    - full or redacted: a copy with withheld groups removed and obligations applied; the removed
      concrete pointers are listed under `WITHHELD_KEY`. Fields whose generic pointer is not in
      `field_groups` (the envelope) are kept: markings and grades travel with the data.

    `generalise_postcode` releases a group only at district level: postcodes become their
    district and any other value of that group (address lines, coordinates) is withheld.
    `generalise_date` turns ISO dates into their year and leaves other values alone.
    """
    if decision.outcome in (Outcome.HIDDEN, Outcome.DENIED):
        return None
    if decision.outcome is Outcome.POINTER:
        paths = pointer_paths or {"id": "/id", "owner_force": "/owner_force", "kind": "/kind"}
        pointer = {name: _get(record_json, path) for name, path in paths.items()}
        pointer["contact"] = decision.contact
        return pointer

    shown = copy.deepcopy(record_json)
    removals: list[tuple[str, Any, Any]] = []
    for generic, group in field_groups.items():
        if group not in decision.withheld_groups and group not in decision.obligations:
            continue
        obligations = decision.obligations.get(group, frozenset())
        for concrete, parent, key in list(expand_pointer(shown, generic)):
            if group in decision.withheld_groups:
                removals.append((concrete, parent, key))
                continue
            value = parent[key]
            if Obligation.GENERALISE_POSTCODE in obligations:
                district = postcode_district(value) if isinstance(value, str) else None
                if district is None:
                    removals.append((concrete, parent, key))
                    continue
                value = district
            if Obligation.GENERALISE_DATE in obligations:
                value = _map_leaves(value, _year_of)
            if Obligation.MASK in obligations:
                value = _map_leaves(value, _mask)
            parent[key] = value
    # Remove list items from the highest index down so earlier indexes stay valid.
    removals.sort(key=lambda item: item[2] if isinstance(item[2], int) else -1, reverse=True)
    for _, parent, key in removals:
        del parent[key]
    shown[WITHHELD_KEY] = sorted(concrete for concrete, _, _ in removals)
    return shown
