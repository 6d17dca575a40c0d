"""Agreements grant only on the days they are in force, between their parties, for their
purposes; an agreement's forbids and @visibility("hidden") work as documented."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policies import Mode, Outcome, PolicyContext, PolicyEngine, Principal, RecordAttributes
from schemas.enums import ClassificationRank, Purpose, VettingLevel
from tests.policies.conftest import READ_ALL, WHEN, write_agreement

PRINCIPAL = Principal("u20", "20", frozenset({"analyst"}), VettingLevel.NPPV2)
RECORD = RecordAttributes("05", "county_line", ClassificationRank.OFFICIAL)
CONTEXT = PolicyContext(Purpose.INVESTIGATION, "OP-1", WHEN)


def _engine(tmp_path: Path, **dates: str) -> PolicyEngine:
    write_agreement(tmp_path, "dated", READ_ALL, **dates)
    return PolicyEngine.load(tmp_path)


def test_expired_agreement_grants_nothing(tmp_path: Path) -> None:
    engine = _engine(tmp_path, start="2024-01-01", end="2026-05-31")
    decision = engine.decide(PRINCIPAL, RECORD, CONTEXT)
    assert decision.outcome is Outcome.HIDDEN
    assert decision.agreement_ids == ()
    fits = engine.agreement_fits(PRINCIPAL, RECORD, CONTEXT)
    assert fits[0].why_not == "expired on 2026-06-01"


def test_not_yet_valid_agreement_grants_nothing(tmp_path: Path) -> None:
    engine = _engine(tmp_path, start="2026-06-02", end="2027-01-01")
    assert engine.decide(PRINCIPAL, RECORD, CONTEXT).outcome is Outcome.HIDDEN
    assert engine.agreement_fits(PRINCIPAL, RECORD, CONTEXT)[0].why_not == (
        "not yet in force on 2026-06-01"
    )


@pytest.mark.parametrize(
    ("day", "outcome"),
    [
        ("2026-01-01", Outcome.FULL),
        ("2026-06-30", Outcome.FULL),
        ("2026-07-01", Outcome.HIDDEN),
        ("2025-12-31", Outcome.HIDDEN),
    ],
)
def test_start_and_end_days_are_included(tmp_path: Path, day: str, outcome: Outcome) -> None:
    engine = _engine(tmp_path, start="2026-01-01", end="2026-06-30")
    when = datetime.fromisoformat(f"{day}T23:00:00+00:00").astimezone(UTC)
    assert engine.decide(PRINCIPAL, RECORD, replace(CONTEXT, time=when)).outcome is outcome


def test_agreement_grants_nothing_to_a_non_party(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    outsider = replace(PRINCIPAL, force="63")
    assert engine.decide(outsider, RECORD, CONTEXT).outcome is Outcome.HIDDEN
    foreign = replace(RECORD, owner_force="01")
    assert engine.decide(PRINCIPAL, foreign, CONTEXT).outcome is Outcome.HIDDEN


def test_purpose_outside_the_agreement_is_denied_not_hidden(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    decision = engine.decide(PRINCIPAL, RECORD, replace(CONTEXT, purpose=Purpose.PREVENTION))
    assert decision.outcome is Outcome.DENIED
    assert "prevention" in decision.reason


def test_hidden_forbid_hides_even_the_hit(tmp_path: Path) -> None:
    write_agreement(
        tmp_path,
        "hiding",
        READ_ALL
        + """
@id("t.hide") @visibility("hidden") @reason("never a hit")
forbid (principal, action, resource) when { resource.classification_rank >= 2 };
""",
    )
    engine = PolicyEngine.load(tmp_path)
    hidden = engine.decide(
        PRINCIPAL, replace(RECORD, classification=ClassificationRank.OFFICIAL_SENSITIVE), CONTEXT
    )
    assert hidden.outcome is Outcome.HIDDEN
    assert hidden.policy_ids == ("t.hide",)
    assert engine.decide(PRINCIPAL, RECORD, CONTEXT).outcome is Outcome.FULL


def test_forbidding_read_leaves_a_pointer_with_the_contact(tmp_path: Path) -> None:
    write_agreement(
        tmp_path,
        "pointer",
        READ_ALL
        + """
@id("t.no_read") @reason("pointers only")
forbid (principal, action == Action::"read_record", resource);
""",
    )
    engine = PolicyEngine.load(tmp_path)
    decision = engine.decide(PRINCIPAL, RECORD, CONTEXT)
    assert decision.outcome is Outcome.POINTER
    assert decision.reason == "pointers only"
    assert decision.contact == "Test information sharing team"
    assert set(decision.policy_ids) == {"t.hits", "t.no_read"}


def test_hits_mode_never_releases_fields(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    decision = engine.decide(PRINCIPAL, RECORD, replace(CONTEXT, mode=Mode.HITS))
    assert decision.outcome is Outcome.POINTER
    assert decision.permitted_groups == frozenset()


def test_field_permits_of_one_agreement_do_not_widen_another(tmp_path: Path) -> None:
    # Agreement "reader" lets the principal read but releases only identity; agreement
    # "fields" releases every group but lets nobody read. Fields beyond identity stay withheld.
    write_agreement(
        tmp_path,
        "reader",
        """
@id("r.read") @reason("read") permit (principal, action == Action::"read_record", resource);
@id("r.identity") @reason("identity") permit (principal, action == Action::"identity", resource);
""",
    )
    write_agreement(
        tmp_path,
        "fields",
        """
@id("f.fields") @reason("fields") permit (principal, action in Action::"fields", resource);
""",
    )
    decision = PolicyEngine.load(tmp_path).decide(PRINCIPAL, RECORD, CONTEXT)
    assert decision.outcome is Outcome.REDACTED
    assert {g.value for g in decision.permitted_groups} == {"identity"}
