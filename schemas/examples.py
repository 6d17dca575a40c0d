"""Valid example records, one per kind, as plain JSON data: for tests, docs and synthetic data.

All names, numbers and places are invented. Phone numbers are in valid UK mobile ranges so they
pass validation; they are not known to belong to anyone.
"""

from __future__ import annotations

import copy
from typing import Any

from schemas.records import KINDS, SCHEMA_VERSION, UnknownRecordKindError

_ENVELOPE: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION,
    "owner_force": "20",
    "version": 1,
    "created_at": "2024-03-01T09:30:00Z",
    "updated_at": "2024-03-02T14:00:00Z",
    "classification": {
        "tier": "OFFICIAL",
        "sensitive": True,
        "descriptors": ["PERSONAL"],
        "caveats": [],
        "legacy_gpms": None,
    },
    "grading": {
        "source_evaluation": "2",
        "assessment": "B",
        "handling": "P",
        "conditions": None,
        "condition_forces": None,
        "legacy_5x5x5": None,
    },
    "subject_categories": [],
    "sensitive_categories": [],
    "retention": {
        "group": 4,
        "next_review": "2030-03-01",
        "clear_period_start": None,
        "retain_decision": None,
    },
    "source": {"system": "niche-rms", "local_ref": "LR-0001"},
    "originator": {"id": "analyst-0042", "unit": "Intelligence Hub"},
    "links": [],
}

_BODIES: dict[str, dict[str, Any]] = {
    "person": {
        "names": [
            {"name_type": "primary", "given_names": "Alex Jordan", "family_name": "Testperson"},
            {"name_type": "nickname", "given_names": "AJ", "family_name": None},
        ],
        "date_of_birth": "2001-07-14",
        "gender": "male",
        "nationalities": ["GB"],
        "identifiers": [{"type": "passport", "number": "123456789", "issuing_country": "GB"}],
    },
    "phone": {
        "number": "+447911123456",
        "imei": "490154203237518",
        "handset": "basic feature phone",
        "network": None,
    },
    "vehicle": {"vrm": "AB12CDE", "make": "Ford", "model": "Fiesta", "colour": "silver"},
    "location": {
        "address_lines": ["Unit 4", "Example Trading Estate"],
        "town": "Birmingham",
        "postcode": "B1 1AA",
        "premises_type": "car_wash",
    },
    "organisation": {
        "name": "Example Hand Car Wash Ltd",
        "organisation_type": "business",
        "industry": "car_wash",
    },
    "intelligence_report": {
        "text": "Workers at the premises appear to live on site and are collected by van daily.",
        "submitted_at": "2024-03-01T09:00:00Z",
        "sanitised": True,
        "restricted_original_ref": None,
        "priority": "medium",
    },
    "county_line": {
        "line_names": ["Example Line"],
        "deal_lines": [
            {"number": "+447700100200", "valid_from": "2023-11-01", "valid_to": "2024-01-31"},
            {"number": "+447412345678", "valid_from": "2024-02-01", "valid_to": None},
        ],
        "exporting_force": "01",
        "importing_forces": ["20", "22"],
        "drug_types": ["heroin", "crack_cocaine"],
        "status": "active",
        "closure": None,
    },
    "modern_slavery_case": {
        "exploitation_types": ["LABOUR"],
        "victim_age_group": "ADULT",
        "nrm_reference": "NRM-EXAMPLE-0001",
        "reasonable_grounds": "positive",
        "conclusive_grounds": "pending",
        "duty_to_notify": True,
        "where_exploited": "UK",
        "recruitment_route": "job_advert",
        "industry": "car_wash",
        "county_lines": False,
    },
    "event": {
        "event_type": "safeguarding_referral",
        "occurred_at": "2024-03-01T16:45:00Z",
        "location_ref": {"force": "20", "record_id": "example-location-1"},
        "summary": "Two adults referred to the local authority after a welfare visit.",
    },
}


def example_record(kind: str, **overrides: Any) -> dict[str, Any]:
    """A valid record of `kind` as plain JSON data; top-level keys in `overrides` replace the
    example's (pass a whole `body`, `grading`, ... to change one of those)."""
    if kind not in KINDS:
        raise UnknownRecordKindError(kind)
    record: dict[str, Any] = {"id": f"example-{kind.replace('_', '-')}-1", "kind": kind}
    record.update(copy.deepcopy(_ENVELOPE))
    record["body"] = copy.deepcopy(_BODIES[kind])
    record.update(copy.deepcopy(overrides))
    return record
