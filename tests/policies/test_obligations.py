"""Obligations: known ones ride on the decision, an unknown one denies it (XACML semantics), and
apply_decision carries them out on real records of the standard schema."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from policies import (
    POLICY_FIELD_GROUPS,
    WITHHELD_KEY,
    Decision,
    Obligation,
    Outcome,
    PolicyContext,
    PolicyEngine,
    Principal,
    RecordAttributes,
    apply_decision,
    postcode_district,
    record_attributes_from_json,
)
from schemas import field_groups
from schemas.enums import ClassificationRank, HandlingCode, Purpose, VettingLevel
from schemas.examples import example_record
from schemas.fields import FieldGroup
from tests.policies.conftest import READ_ALL, WHEN, write_agreement

PRINCIPAL = Principal("u20", "20", frozenset({"analyst"}), VettingLevel.NPPV2)
RECORD = RecordAttributes("05", "person", ClassificationRank.OFFICIAL)
CONTEXT = PolicyContext(Purpose.INVESTIGATION, "OP-1", WHEN)


def _decision(
    outcome: Outcome,
    withheld: set[FieldGroup] = frozenset(),  # type: ignore[assignment]
    obligations: dict[FieldGroup, frozenset[Obligation]] | None = None,
    contact: str | None = None,
) -> Decision:
    return Decision(
        outcome=outcome,
        permitted_groups=frozenset(POLICY_FIELD_GROUPS) - withheld,
        withheld_groups=frozenset(withheld),
        obligations=obligations or {},
        policy_ids=("t",),
        reason="test",
        policy_hash="0" * 64,
        contact=contact,
    )


def test_unknown_obligation_denies_the_whole_decision(tmp_path: Path) -> None:
    write_agreement(
        tmp_path,
        "future",
        READ_ALL
        + """
@id("t.blur") @obligation("blur_face") @reason("faces are blurred")
permit (principal, action == Action::"identity", resource);
""",
    )
    engine = PolicyEngine.load(tmp_path)
    decision = engine.decide(PRINCIPAL, RECORD, CONTEXT)
    assert decision.outcome is Outcome.DENIED
    assert decision.policy_ids == ("t.blur",)
    assert "blur_face" in decision.reason
    assert apply_decision(example_record("person"), decision, field_groups("person")) is None


def test_known_obligations_are_carried_per_group(tmp_path: Path) -> None:
    write_agreement(
        tmp_path,
        "known",
        READ_ALL
        + """
@id("t.dob") @obligation("generalise_date, mask") @reason("identity masked")
permit (principal, action == Action::"identity", resource);
@id("t.drop") @obligation("drop") @reason("free text dropped")
permit (principal, action == Action::"free_text", resource);
""",
    )
    decision = PolicyEngine.load(tmp_path).decide(PRINCIPAL, RECORD, CONTEXT)
    assert decision.outcome is Outcome.REDACTED
    assert decision.obligations == {
        FieldGroup.IDENTITY: frozenset({Obligation.GENERALISE_DATE, Obligation.MASK})
    }
    assert decision.withheld_groups == {FieldGroup.FREE_TEXT}


def test_obligation_on_read_record_applies_to_every_released_group(tmp_path: Path) -> None:
    write_agreement(
        tmp_path,
        "record-level",
        READ_ALL.replace(
            '@id("t.read") @reason("read")',
            '@id("t.read") @obligation("generalise_date") @reason("read")',
        ),
    )
    decision = PolicyEngine.load(tmp_path).decide(PRINCIPAL, RECORD, CONTEXT)
    assert decision.outcome is Outcome.REDACTED
    assert set(decision.obligations) == set(POLICY_FIELD_GROUPS)


def test_redaction_removes_withheld_groups_and_lists_their_pointers() -> None:
    record = example_record("person")
    decision = _decision(Outcome.REDACTED, withheld={FieldGroup.IDENTITY})
    shown = apply_decision(record, decision, field_groups("person"))
    assert shown is not None
    assert shown["body"]["names"] == [{}, {}]
    assert "date_of_birth" not in shown["body"]
    assert "/body/date_of_birth" in shown[WITHHELD_KEY]
    assert "/body/names/0/family_name" in shown[WITHHELD_KEY]
    assert shown["owner_force"] == record["owner_force"]
    assert shown["classification"] == record["classification"]
    assert record["body"]["date_of_birth"] == "2001-07-14", "the input must not be changed"


def test_generalise_date_and_mask() -> None:
    record = example_record("person")
    decision = _decision(
        Outcome.REDACTED, obligations={FieldGroup.IDENTITY: frozenset({Obligation.GENERALISE_DATE})}
    )
    shown = apply_decision(record, decision, field_groups("person"))
    assert shown is not None
    assert shown["body"]["date_of_birth"] == "2001"
    assert shown["body"]["names"][0]["family_name"] == "Testperson"
    masked = apply_decision(
        record,
        _decision(
            Outcome.REDACTED, obligations={FieldGroup.IDENTITY: frozenset({Obligation.MASK})}
        ),
        field_groups("person"),
    )
    assert masked is not None
    assert masked["body"]["names"][0]["family_name"] == "***"
    assert masked["body"]["names"][1]["family_name"] is None
    assert masked[WITHHELD_KEY] == []


def test_generalise_postcode_keeps_only_the_district() -> None:
    record = example_record("location")
    decision = _decision(
        Outcome.REDACTED,
        obligations={FieldGroup.LOCATION_PRECISE: frozenset({Obligation.GENERALISE_POSTCODE})},
    )
    shown = apply_decision(record, decision, field_groups("location"))
    assert shown is not None
    assert shown["body"]["postcode"] == "B1"
    assert shown["body"]["address_lines"] == []
    assert shown[WITHHELD_KEY] == ["/body/address_lines/0", "/body/address_lines/1"]
    assert shown["body"]["town"] == "Birmingham"


@pytest.mark.parametrize(
    ("postcode", "district"),
    [
        ("B1 1AA", "B1"),
        ("l1 8jq", "L1"),
        ("EC1A 1BB", "EC1A"),
        ("M601NW", "M60"),
        ("SW1A 2AA", "SW1A"),
        ("not a postcode", None),
        ("B1", None),
    ],
)
def test_postcode_district(postcode: str, district: str | None) -> None:
    assert postcode_district(postcode) == district


def test_pointer_gives_only_owner_kind_id_and_contact() -> None:
    record = example_record("person")
    shown = apply_decision(
        record, _decision(Outcome.POINTER, contact="MIB"), field_groups("person")
    )
    assert shown == {
        "id": record["id"],
        "owner_force": record["owner_force"],
        "kind": "person",
        "contact": "MIB",
    }


@pytest.mark.parametrize("outcome", [Outcome.HIDDEN, Outcome.DENIED])
def test_hidden_and_denied_disclose_nothing(outcome: Outcome) -> None:
    assert (
        apply_decision(example_record("person"), _decision(outcome), field_groups("person")) is None
    )


def test_example_policies_end_to_end_on_a_modern_slavery_record(
    example_engine: PolicyEngine,
) -> None:
    record = example_record("modern_slavery_case")
    record["owner_force"] = "20"
    record["subject_categories"] = ["VICTIM"]
    attrs = record_attributes_from_json(record, today=date(2026, 6, 1))
    decision = example_engine.decide(
        Principal("sg05", "05", frozenset({"analyst"}), VettingLevel.NPPV2), attrs, CONTEXT
    )
    assert decision.outcome is Outcome.REDACTED
    shown = apply_decision(record, decision, field_groups("modern_slavery_case"))
    assert shown is not None
    assert "nrm_reference" not in shown["body"]
    assert "/body/nrm_reference" in shown[WITHHELD_KEY]
    assert shown["body"]["industry"] == record["body"]["industry"]


def test_record_attributes_from_json() -> None:
    record = example_record("person")
    record["grading"]["handling"] = "C"
    record["grading"]["conditions"] = "named forces only"
    record["grading"]["condition_forces"] = ["05"]
    record["retention"]["next_review"] = "2026-05-31"
    attrs = record_attributes_from_json(record, today=date(2026, 6, 1))
    assert attrs == replace(
        attrs,
        owner_force=record["owner_force"],
        kind="person",
        classification=ClassificationRank.OFFICIAL_SENSITIVE,
        handling_code=HandlingCode.C,
        condition_forces=frozenset({"05"}),
        retention_review_overdue=True,
        retain_decision=False,
    )
    assert attrs.conditions_apply
