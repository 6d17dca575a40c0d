"""Record validation: valid records of every kind parse; an invalid one names the field at fault."""

from collections.abc import Callable
from typing import Any

import pytest

from schemas import KINDS, RecordValidationError, get_pointer, parse_record, set_pointer
from schemas.enums import ClassificationRank, RecordKind
from schemas.examples import example_record
from schemas.records import CountyLineRecord, PersonRecord, PhoneRecord, record_model

Mutation = Callable[[dict[str, Any]], None]


def setting(pointer: str, value: Any) -> Mutation:
    return lambda data: set_pointer(data, pointer, value)


def removing(pointer: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        parent_pointer, _, key = pointer.rpartition("/")
        del get_pointer(data, parent_pointer)[key]

    return mutate


def rejected_at(kind: str, mutate: Mutation) -> list[str]:
    data = example_record(kind)
    mutate(data)
    with pytest.raises(RecordValidationError) as caught:
        parse_record(data)
    return [pointer for pointer, _ in caught.value.errors]


def test_kinds_registry_matches_the_record_kind_code_list() -> None:
    assert set(KINDS) == {kind.value for kind in RecordKind}


@pytest.mark.parametrize("kind", KINDS)
def test_example_record_of_every_kind_is_valid(kind: str) -> None:
    record = parse_record(example_record(kind))
    assert isinstance(record, record_model(kind))
    assert record.kind == kind
    assert parse_record(record.model_dump(mode="json")) == record


# Envelope rules, checked on every kind: (mutation, pointer at fault).
ENVELOPE_CASES: list[tuple[str, Mutation, str]] = [
    ("bad force code", setting("/owner_force", "99"), "/owner_force"),
    ("malformed force code", setting("/owner_force", "West Mids"), "/owner_force"),
    ("missing id", removing("/id"), "/id"),
    ("id with a slash", setting("/id", "a/b"), "/id"),
    ("id too long", setting("/id", "x" * 65), "/id"),
    ("version zero", setting("/version", 0), "/version"),
    ("version as text", setting("/version", "1"), "/version"),
    ("version beyond the JSON safe integers", setting("/version", 2**53), "/version"),
    ("unknown schema version", setting("/schema_version", "2"), "/schema_version"),
    ("naive timestamp", setting("/created_at", "2024-03-01T09:30:00"), "/created_at"),
    ("updated before created", setting("/updated_at", "2024-02-01T00:00:00Z"), "/updated_at"),
    ("unknown tier", setting("/classification/tier", "RESTRICTED"), "/classification/tier"),
    (
        "sensitive marking on SECRET",
        setting("/classification/tier", "SECRET"),
        "/classification/sensitive",
    ),
    (
        "descriptor without the sensitive marking",
        setting("/classification/sensitive", False),
        "/classification/descriptors",
    ),
    (
        "missing condition under handling code C",
        setting("/grading/handling", "C"),
        "/grading/conditions",
    ),
    (
        "empty condition under handling code C",
        lambda d: d["grading"].update(handling="C", conditions=""),
        "/grading/conditions",
    ),
    (
        "conditions under handling code P",
        setting("/grading/conditions", "Not for evidence"),
        "/grading/conditions",
    ),
    (
        "condition forces under handling code P",
        setting("/grading/condition_forces", ["20"]),
        "/grading/condition_forces",
    ),
    (
        "bad condition force",
        lambda d: d["grading"].update(
            handling="C", conditions="Named forces", condition_forces=["20", "77"]
        ),
        "/grading/condition_forces/1",
    ),
    (
        "unknown source evaluation",
        setting("/grading/source_evaluation", "4"),
        "/grading/source_evaluation",
    ),
    ("unknown assessment", setting("/grading/assessment", "F"), "/grading/assessment"),
    (
        "unknown subject category",
        setting("/subject_categories", ["INFORMANT"]),
        "/subject_categories/0",
    ),
    (
        "unknown sensitive category",
        setting("/sensitive_categories", ["WEALTH"]),
        "/sensitive_categories/0",
    ),
    ("unknown retention group", setting("/retention/group", 5), "/retention/group"),
    ("bad review date", setting("/retention/next_review", "2030-02-30"), "/retention/next_review"),
    ("empty source system", setting("/source/system", "  "), "/source/system"),
    ("unknown top-level field", setting("/colour", "red"), "/colour"),
    (
        "unknown link role",
        setting("/links", [{"role": "cousin", "target": {"force": "20", "record_id": "p1"}}]),
        "/links/0/role",
    ),
    (
        "link to an unknown force",
        setting("/links", [{"role": "associate", "target": {"force": "00", "record_id": "p1"}}]),
        "/links/0/target/force",
    ),
    (
        "link confidence above one",
        setting(
            "/links",
            [
                {
                    "role": "associate",
                    "target": {"force": "20", "record_id": "p1"},
                    "confidence": 1.5,
                }
            ],
        ),
        "/links/0/confidence",
    ),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("mutate", "pointer"),
    [pytest.param(m, p, id=name) for name, m, p in ENVELOPE_CASES],
)
def test_envelope_errors_are_reported_at_their_pointer(
    kind: str, mutate: Mutation, pointer: str
) -> None:
    assert pointer in rejected_at(kind, mutate)


BODY_CASES: list[tuple[str, str, Mutation, str]] = [
    ("person", "no names", setting("/body/names", []), "/body/names"),
    ("person", "two primary names", setting("/body/names/1/name_type", "primary"), "/body/names"),
    (
        "person",
        "name with neither part",
        lambda d: d["body"]["names"][1].update(given_names=None),
        "/body/names/1/family_name",
    ),
    (
        "person",
        "unknown name type",
        setting("/body/names/1/name_type", "street"),
        "/body/names/1/name_type",
    ),
    (
        "person",
        "bad date of birth",
        setting("/body/date_of_birth", "14/07/2001"),
        "/body/date_of_birth",
    ),
    ("person", "unknown gender", setting("/body/gender", "m"), "/body/gender"),
    ("person", "bad nationality", setting("/body/nationalities", ["GBR"]), "/body/nationalities/0"),
    (
        "person",
        "unknown identifier type",
        setting("/body/identifiers/0/type", "library_card"),
        "/body/identifiers/0/type",
    ),
    ("phone", "bad phone number", setting("/body/number", "07700 900123"), "/body/number"),
    ("phone", "not a phone number", setting("/body/number", "call me"), "/body/number"),
    (
        "phone",
        "IMEI with a wrong check digit",
        setting("/body/imei", "490154203237519"),
        "/body/imei",
    ),
    ("phone", "IMEI too short", setting("/body/imei", "4901542032375"), "/body/imei"),
    ("phone", "missing number", removing("/body/number"), "/body/number"),
    ("vehicle", "VRM with punctuation", setting("/body/vrm", "AB12-CDE"), "/body/vrm"),
    ("vehicle", "missing VRM", removing("/body/vrm"), "/body/vrm"),
    ("vehicle", "unknown body field", setting("/body/wheels", 4), "/body/wheels"),
    ("location", "bad postcode", setting("/body/postcode", "B1 1A"), "/body/postcode"),
    (
        "location",
        "postcode with a forbidden letter",
        setting("/body/postcode", "QB1 1AA"),
        "/body/postcode",
    ),
    (
        "location",
        "unknown premises type",
        setting("/body/premises_type", "casino"),
        "/body/premises_type",
    ),
    (
        "location",
        "neither address nor postcode",
        lambda d: d["body"].update(address_lines=[], postcode=None),
        "/body/postcode",
    ),
    (
        "organisation",
        "unknown organisation type",
        setting("/body/organisation_type", "gang"),
        "/body/organisation_type",
    ),
    ("organisation", "empty name", setting("/body/name", ""), "/body/name"),
    ("intelligence_report", "empty text", setting("/body/text", ""), "/body/text"),
    (
        "intelligence_report",
        "sanitised flag as text",
        setting("/body/sanitised", "yes"),
        "/body/sanitised",
    ),
    (
        "intelligence_report",
        "unknown priority",
        setting("/body/priority", "urgent"),
        "/body/priority",
    ),
    ("county_line", "no line names", setting("/body/line_names", []), "/body/line_names"),
    (
        "county_line",
        "bad deal-line number",
        setting("/body/deal_lines/1/number", "12345"),
        "/body/deal_lines/1/number",
    ),
    (
        "county_line",
        "deal line valid_to before valid_from",
        setting("/body/deal_lines/0/valid_to", "2023-01-01"),
        "/body/deal_lines/0/valid_to",
    ),
    (
        "county_line",
        "bad exporting force",
        setting("/body/exporting_force", "88"),
        "/body/exporting_force",
    ),
    (
        "county_line",
        "bad importing force",
        setting("/body/importing_forces", ["20", "XX"]),
        "/body/importing_forces/1",
    ),
    (
        "county_line",
        "unknown drug type",
        setting("/body/drug_types", ["tea"]),
        "/body/drug_types/0",
    ),
    (
        "county_line",
        "closed line without closure",
        setting("/body/status", "closed"),
        "/body/closure",
    ),
    (
        "county_line",
        "active line with closure",
        setting("/body/closure", {"type": 1, "closed_on": "2024-05-01"}),
        "/body/closure",
    ),
    (
        "county_line",
        "unknown closure type",
        lambda d: d["body"].update(status="closed", closure={"type": 3, "closed_on": "2024-05-01"}),
        "/body/closure/type",
    ),
    (
        "modern_slavery_case",
        "unknown exploitation type",
        setting("/body/exploitation_types", ["FINANCIAL"]),
        "/body/exploitation_types/0",
    ),
    (
        "modern_slavery_case",
        "no exploitation type",
        setting("/body/exploitation_types", []),
        "/body/exploitation_types",
    ),
    (
        "modern_slavery_case",
        "unknown age group",
        setting("/body/victim_age_group", "TEEN"),
        "/body/victim_age_group",
    ),
    (
        "modern_slavery_case",
        "conclusive grounds without positive reasonable grounds",
        lambda d: d["body"].update(reasonable_grounds="pending", conclusive_grounds="positive"),
        "/body/conclusive_grounds",
    ),
    (
        "modern_slavery_case",
        "duty to notify as text",
        setting("/body/duty_to_notify", "true"),
        "/body/duty_to_notify",
    ),
    ("event", "unknown event type", setting("/body/event_type", "party"), "/body/event_type"),
    (
        "event",
        "naive occurred_at",
        setting("/body/occurred_at", "2024-03-01T16:45:00"),
        "/body/occurred_at",
    ),
    (
        "event",
        "location ref to an unknown force",
        setting("/body/location_ref/force", "0X"),
        "/body/location_ref/force",
    ),
]


@pytest.mark.parametrize(
    ("kind", "mutate", "pointer"),
    [pytest.param(k, m, p, id=f"{k}: {name}") for k, name, m, p in BODY_CASES],
)
def test_body_errors_are_reported_at_their_pointer(
    kind: str, mutate: Mutation, pointer: str
) -> None:
    assert pointer in rejected_at(kind, mutate)


def test_every_kind_has_body_error_cases() -> None:
    assert {kind for kind, *_ in BODY_CASES} == set(KINDS)


def test_unknown_and_missing_kind_are_reported_at_kind() -> None:
    assert rejected_at("person", setting("/kind", "nominal")) == ["/kind"]
    assert rejected_at("person", removing("/kind")) == ["/kind"]


def test_pointer_tokens_are_escaped_per_rfc_6901() -> None:
    assert "/a~1b~0c" in rejected_at("person", setting("/a~1b~0c", 1))


def test_all_errors_of_a_record_are_reported_together() -> None:
    def break_three(data: dict[str, Any]) -> None:
        data["owner_force"] = "99"
        data["grading"]["handling"] = "C"
        data["body"]["number"] = "0"

    assert set(rejected_at("phone", break_three)) == {
        "/owner_force",
        "/grading/conditions",
        "/body/number",
    }


def test_identifiers_are_normalised_to_their_index_form() -> None:
    phone = parse_record(
        example_record("phone", body={"number": "07911 123456", "imei": "49-015420-323751-8"})
    )
    assert isinstance(phone, PhoneRecord)
    assert phone.body.number == "+447911123456"
    assert phone.body.imei == "490154203237518"
    vehicle = parse_record(example_record("vehicle", body={"vrm": " ab12 cde "}))
    assert vehicle.body.model_dump()["vrm"] == "AB12CDE"
    location = parse_record(
        example_record("location", body={"postcode": "sw1a1aa", "premises_type": "nail_bar"})
    )
    assert location.body.model_dump()["postcode"] == "SW1A 1AA"


def test_met_alias_code_is_stored_as_the_met_code() -> None:
    record = parse_record(example_record("person", owner_force="02"))
    assert record.owner_force == "01"


def test_timestamps_are_converted_to_utc() -> None:
    record = parse_record(example_record("person", created_at="2024-03-01T10:30:00+01:00"))
    assert record.model_dump(mode="json")["created_at"] == "2024-03-01T09:30:00Z"


@pytest.mark.parametrize(
    ("tier", "sensitive", "rank"),
    [
        ("OFFICIAL", False, ClassificationRank.OFFICIAL),
        ("OFFICIAL", True, ClassificationRank.OFFICIAL_SENSITIVE),
        ("SECRET", False, ClassificationRank.SECRET),
        ("TOP_SECRET", False, ClassificationRank.TOP_SECRET),
    ],
)
def test_classification_rank_follows_tier_and_marking(
    tier: str, sensitive: bool, rank: ClassificationRank
) -> None:
    classification = {"tier": tier, "sensitive": sensitive, "descriptors": []}
    record = parse_record(example_record("person", classification=classification))
    assert record.classification.rank is rank
    assert "rank" not in record.model_dump(mode="json")["classification"]


def test_handling_code_c_with_conditions_and_forces_is_valid() -> None:
    grading = {
        "source_evaluation": "1",
        "assessment": "A",
        "handling": "C",
        "conditions": "Consult the originator before any action.",
        "condition_forces": ["02", "20"],
        "legacy_5x5x5": "B2 4",
    }
    record = parse_record(example_record("intelligence_report", grading=grading))
    assert record.grading.condition_forces == ["01", "20"]
    assert record.grading.legacy_5x5x5 == "B2 4"


def test_closed_county_line_with_closure_is_valid() -> None:
    body = example_record("county_line")["body"]
    body.update(status="closed", closure={"type": 1, "closed_on": "2024-05-01"})
    record = parse_record(example_record("county_line", body=body))
    assert isinstance(record, CountyLineRecord)
    assert record.body.closure is not None
    assert record.body.closure.type == 1


def test_records_are_immutable() -> None:
    record = parse_record(example_record("person"))
    assert isinstance(record, PersonRecord)
    with pytest.raises(ValueError):
        record.body.names[0].__setattr__("family_name", "Changed")
