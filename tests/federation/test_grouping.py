"""Grouping the same person, phone or line across forces, without merging their records."""

from __future__ import annotations

from typing import Any

from gateway.federation.grouping import group_records, record_keys
from gateway.federation.payloads import ForceResult
from schemas.examples import example_record


def person(force: str, record_id: str, given: str, family: str, dob: str) -> dict[str, Any]:
    record = example_record("person", id=record_id, owner_force=force)
    record["body"]["names"] = [
        {"name_type": "primary", "given_names": given, "family_name": family}
    ]
    record["body"]["date_of_birth"] = dob
    return record


def result(force: str, *records: dict[str, Any]) -> ForceResult:
    return ForceResult(
        force=force,
        status="ok",
        hit_count=len(records),
        hits=[{"record_id": r["id"], "record": r} for r in records],
    )


def test_a_person_under_spelling_variants_with_one_dob_is_one_group() -> None:
    groups = group_records(
        [
            result("05", person("05", "05-P-1", "Łukasz", "Kowalczyk", "1991-09-28")),
            result("20", person("20", "20-P-9", "Kowalczyk", "Lukasz", "1991-09-28")),
            result("01", person("01", "01-P-3", "Lukasz", "Kowalczyk", "1990-01-01")),
        ]
    )
    assert [(g.forces, len(g.records)) for g in groups] == [(["05", "20"], 2)]
    assert groups[0].key.startswith("person:")


def test_a_shared_phone_number_groups_and_records_stay_separate() -> None:
    a = example_record("phone", id="05-T-1", owner_force="05")
    b = example_record("phone", id="20-T-7", owner_force="20")
    b["body"]["number"] = "07911 123456"  # same number, national format
    groups = group_records([result("05", a), result("20", b)])
    assert [g.key for g in groups] == ["phone:+447911123456"]
    assert groups[0].records == [
        {"force": "05", "record_id": "05-T-1"},
        {"force": "20", "record_id": "20-T-7"},
    ]


def test_a_name_alone_is_not_enough_to_group_people() -> None:
    record = person("05", "05-P-1", "John", "Smith", "1980-01-01")
    record["body"]["date_of_birth"] = None
    assert not any(key.startswith("person:") for key in record_keys(record))
