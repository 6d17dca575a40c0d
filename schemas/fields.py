"""Per-field metadata that storage, search and policy derive their behaviour from.

Every field of a record body declares, in the model itself, whether it is sensitive (encrypted at
rest, one ciphertext per value), which blind search index it feeds, and which field group it
belongs to (field groups are Cedar actions, so policy can release or withhold them as a unit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class IndexKind(StrEnum):
    """Blind search indexes a field can feed (values are normalised before hashing)."""

    PHONE = "phone"  # E.164
    # UK phone numbers found in free text, indexed as phone numbers (E.164): a deal line is often
    # recorded only in an intelligence report's text.
    PHONE_IN_TEXT = "phone_in_text"
    VRM = "vrm"  # vehicle registration mark, upper case, no spaces
    NAME = "name"  # casefolded, diacritics removed; also a phonetic code
    DOB = "dob"  # ISO date
    POSTCODE = "postcode"  # UK postcode, normalised
    LINE_NAME = "line_name"  # county line brand name, normalised


class FieldGroup(StrEnum):
    """Groups of fields that policy releases or withholds together (one Cedar action each)."""

    IDENTITY = "identity"  # names, aliases, date of birth, gender, nationality, document numbers
    CONTACT = "contact"  # phone numbers, IMEI, e-mail, social media handles
    LOCATION_PRECISE = "location_precise"  # address lines, full postcode, coordinates
    VEHICLE = "vehicle"  # registration marks, make, model, colour
    VICTIM_DETAILS = (
        "victim_details"  # victim age group, NRM reference and status, exploitation detail
    )
    FREE_TEXT = "free_text"  # narrative text, intelligence report text, notes
    HANDLING_CONDITIONS = "handling_conditions"  # 3x5x2 handling conditions (code C)
    SENSITIVE_CATEGORIES = "sensitive_categories"  # s.35(8) data: health, ethnicity, religion...
    OPERATIONAL = "operational"  # non-personal operational detail: line status, closure, drug types
    # Provenance, classification, grading codes, categories and retention: policy decides on them
    # and they must travel with any record that is shown at all (grades and markings go with data).
    ENVELOPE = "envelope"


@dataclass(frozen=True, slots=True)
class FieldMeta:
    """Metadata a model field declares in its `Annotated[...]` type.

    On a list field it applies to every item. It is also written into the exported JSON Schema as
    `x-sensitive`, `x-index` and `x-group`, so consumers outside Python see the same contract.
    """

    group: FieldGroup
    sensitive: bool = False
    index: IndexKind | None = None

    def __get_pydantic_json_schema__(
        self, core_schema: Any, handler: Callable[[Any], dict[str, Any]]
    ) -> dict[str, Any]:
        schema = handler(core_schema)
        schema["x-sensitive"] = self.sensitive
        schema["x-group"] = self.group.value
        if self.index is not None:
            schema["x-index"] = self.index.value
        return schema


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One leaf field of a record kind.

    `path` is a generic JSON pointer where list items are `*`, e.g. "/body/names/*/family_name".
    """

    path: str
    sensitive: bool
    index: IndexKind | None
    group: FieldGroup


@dataclass(frozen=True, slots=True)
class FieldValue:
    """A present, non-null leaf value of a concrete record, with its concrete JSON pointer."""

    pointer: str
    spec: FieldSpec
    value: str | int | float | bool
