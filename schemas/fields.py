"""Per-field metadata that storage, search and policy derive their behaviour from.

Every field of a record body declares, in the model itself, whether it is sensitive (encrypted at
rest, one ciphertext per value), which blind search index it feeds, and which field group it
belongs to (field groups are Cedar actions, so policy can release or withhold them as a unit).
"""

from __future__ import annotations

from enum import StrEnum


class IndexKind(StrEnum):
    """Blind search indexes a field can feed (values are normalised before hashing)."""

    PHONE = "phone"  # E.164
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
    VICTIM_DETAILS = "victim_details"  # victim age group, NRM reference and status, exploitation detail
    FREE_TEXT = "free_text"  # narrative text, intelligence report text, notes
    HANDLING_CONDITIONS = "handling_conditions"  # 3x5x2 handling conditions (code C)
    SENSITIVE_CATEGORIES = "sensitive_categories"  # s.35(8) data: health, ethnicity, religion...
    OPERATIONAL = "operational"  # non-personal operational detail: line status, closure, drug types
