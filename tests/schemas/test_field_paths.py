"""Field metadata comes from the models; walk_fields, field_specs and set_pointer agree."""

import copy
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from schemas import (
    KINDS,
    FieldGroup,
    IndexKind,
    field_groups,
    field_specs,
    get_pointer,
    parse_record,
    set_pointer,
    spec_for_pointer,
    walk_fields,
)
from schemas.examples import example_record
from schemas.field_paths import MissingFieldMetaError, UnknownFieldPathError, _model_specs
from schemas.fields import FieldMeta


def _full_record(kind: str) -> dict[str, Any]:
    """An example with every optional envelope part filled, so every path is present."""
    data = example_record(
        kind,
        grading={
            "source_evaluation": "1",
            "assessment": "B",
            "handling": "C",
            "conditions": "Not for evidence.",
            "condition_forces": ["20"],
            "legacy_5x5x5": "B2 4",
        },
        classification={
            "tier": "OFFICIAL",
            "sensitive": True,
            "descriptors": ["PERSONAL"],
            "caveats": ["UK EYES ONLY"],
            "legacy_gpms": "RESTRICTED",
        },
        subject_categories=["SUSPECT"],
        sensitive_categories=["HEALTH"],
        retention={
            "group": 2,
            "next_review": "2030-01-01",
            "clear_period_start": "2020-01-01",
            "retain_decision": {
                "decided_on": "2024-01-01",
                "rationale": "Ongoing risk to children.",
                "reviewer": "reviewer-7",
            },
        },
        links=[
            {
                "role": "associate",
                "target": {"force": "05", "record_id": "p-9"},
                "confidence": 0.8,
                "source_record": {"force": "20", "record_id": "ir-1"},
            }
        ],
    )
    body = data["body"]
    if kind == "phone":
        body["network"] = "Example Mobile"
    if kind == "county_line":
        body.update(status="closed", closure={"type": 2, "closed_on": "2024-06-01"})
    if kind == "intelligence_report":
        body["restricted_original_ref"] = "IR-ORIG-1"
    if kind == "person":
        body["names"][1]["family_name"] = "Alias"
    return parse_record(data).model_dump(mode="json")


@pytest.mark.parametrize("kind", KINDS)
def test_every_spec_path_is_reachable_in_a_full_record(kind: str) -> None:
    seen = {value.spec.path for value in walk_fields(_full_record(kind))}
    assert seen == {spec.path for spec in field_specs(kind)}


@pytest.mark.parametrize("kind", KINDS)
def test_walked_values_are_the_values_at_their_pointers(kind: str) -> None:
    record = _full_record(kind)
    for value in walk_fields(record):
        assert get_pointer(record, value.pointer) == value.value
        assert spec_for_pointer(kind, value.pointer) == value.spec


@pytest.mark.parametrize("kind", KINDS)
def test_encrypting_sensitive_values_in_place_and_restoring_them_round_trips(kind: str) -> None:
    original = _full_record(kind)
    stored = copy.deepcopy(original)
    sensitive = [value for value in walk_fields(original) if value.spec.sensitive]
    assert sensitive, "every kind holds at least one sensitive value"
    for value in sensitive:
        set_pointer(stored, value.pointer, f"ciphertext:{value.pointer}")
    assert stored != original
    for value in sensitive:
        set_pointer(stored, value.pointer, value.value)
    assert stored == original


def test_sensitive_and_indexed_fields_are_the_agreed_ones() -> None:
    def table(kind: str) -> dict[str, tuple[bool, IndexKind | None, FieldGroup]]:
        return {s.path: (s.sensitive, s.index, s.group) for s in field_specs(kind)}

    person = table("person")
    assert person["/body/names/*/family_name"] == (True, IndexKind.NAME, FieldGroup.IDENTITY)
    assert person["/body/names/*/given_names"] == (True, IndexKind.NAME, FieldGroup.IDENTITY)
    assert person["/body/date_of_birth"] == (True, IndexKind.DOB, FieldGroup.IDENTITY)
    assert person["/body/identifiers/*/number"][0] is True
    assert table("phone")["/body/number"] == (True, IndexKind.PHONE, FieldGroup.CONTACT)
    assert table("phone")["/body/imei"][0] is True
    assert table("vehicle")["/body/vrm"] == (True, IndexKind.VRM, FieldGroup.VEHICLE)
    location = table("location")
    assert location["/body/postcode"] == (True, IndexKind.POSTCODE, FieldGroup.LOCATION_PRECISE)
    assert location["/body/address_lines/*"][0] is True
    line = table("county_line")
    assert line["/body/deal_lines/*/number"] == (True, IndexKind.PHONE, FieldGroup.CONTACT)
    assert line["/body/line_names/*"][1] is IndexKind.LINE_NAME
    assert table("intelligence_report")["/body/text"][:1] == (True,)
    assert table("event")["/body/summary"][2] is FieldGroup.FREE_TEXT
    assert table("modern_slavery_case")["/body/nrm_reference"] == (
        True,
        None,
        FieldGroup.VICTIM_DETAILS,
    )
    assert person["/grading/conditions"] == (True, None, FieldGroup.HANDLING_CONDITIONS)


@pytest.mark.parametrize("kind", KINDS)
def test_envelope_metadata_policy_needs_is_not_sensitive(kind: str) -> None:
    specs = {spec.path: spec for spec in field_specs(kind)}
    for path in (
        "/id",
        "/kind",
        "/owner_force",
        "/classification/tier",
        "/classification/sensitive",
        "/grading/handling",
        "/grading/condition_forces/*",
        "/subject_categories/*",
        "/sensitive_categories/*",
        "/retention/group",
        "/retention/next_review",
    ):
        assert specs[path].sensitive is False, path
        assert specs[path].group is FieldGroup.ENVELOPE, path


@pytest.mark.parametrize("kind", KINDS)
def test_field_groups_cover_every_spec(kind: str) -> None:
    groups = field_groups(kind)
    assert list(groups) == [spec.path for spec in field_specs(kind)]
    assert all(isinstance(group, FieldGroup) for group in groups.values())


def test_absent_and_null_values_are_not_walked() -> None:
    record = parse_record(example_record("phone", body={"number": "+447911123456"}))
    pointers = [value.pointer for value in walk_fields(record.model_dump(mode="json"))]
    assert "/body/number" in pointers
    assert "/body/imei" not in pointers
    assert not any(pointer.startswith("/links") for pointer in pointers)


def test_list_items_get_concrete_pointers() -> None:
    record = parse_record(example_record("county_line")).model_dump(mode="json")
    numbers = [v.pointer for v in walk_fields(record) if v.spec.index is IndexKind.PHONE]
    assert numbers == ["/body/deal_lines/0/number", "/body/deal_lines/1/number"]


def test_a_value_at_an_unknown_path_is_refused() -> None:
    record = example_record("vehicle")
    record["body"]["wheels"] = 4
    with pytest.raises(UnknownFieldPathError):
        list(walk_fields(record))
    with pytest.raises(UnknownFieldPathError):
        spec_for_pointer("vehicle", "/body/wheels")


def test_a_leaf_without_field_meta_is_refused() -> None:
    class Undeclared(BaseModel):
        declared: Annotated[str, FieldMeta(FieldGroup.OPERATIONAL)]
        undeclared: str

    with pytest.raises(MissingFieldMetaError, match="undeclared"):
        list(_model_specs(Undeclared, ""))


def test_set_pointer_follows_rfc_6901_escaping() -> None:
    data: dict[str, Any] = {"a/b": {"m~n": [1, 2]}}
    set_pointer(data, "/a~1b/m~0n/1", 3)
    assert data == {"a/b": {"m~n": [1, 3]}}
    assert get_pointer(data, "/a~1b/m~0n/0") == 1
    with pytest.raises(ValueError):
        set_pointer(data, "", 1)
    with pytest.raises(ValueError):
        get_pointer(data, "a")
    with pytest.raises(KeyError):
        set_pointer(data, "/missing/x", 1)


def test_field_meta_is_exported_into_the_json_schema() -> None:
    from schemas.records import PhoneRecord

    body = PhoneRecord.model_json_schema()["$defs"]["PhoneBody"]["properties"]
    assert body["number"]["x-sensitive"] is True
    assert body["number"]["x-index"] == "phone"
    assert body["number"]["x-group"] == "contact"


def test_docs_table_lists_every_sensitive_or_indexed_field() -> None:
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "schemas.md").read_text("utf-8")
    for kind in KINDS:
        for spec in field_specs(kind):
            if spec.sensitive or spec.index is not None:
                row_kind = kind if spec.path.startswith("/body/") else "(envelope)"
                assert f"| {row_kind} | `{spec.path}` |" in docs, (kind, spec.path)
