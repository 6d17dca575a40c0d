"""A decision matrix: principal x record x purpose x mode, against expectations computed by plain
Python rules written here (not by the engine) for the agreements written here."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from policies import (
    POLICY_FIELD_GROUPS,
    Mode,
    Outcome,
    PolicyContext,
    PolicyEngine,
    Principal,
    RecordAttributes,
)
from schemas.enums import (
    ClassificationRank,
    HandlingCode,
    Purpose,
    SensitiveCategory,
    SubjectCategory,
    VettingLevel,
)
from tests.policies.conftest import WHEN, write_agreement

MATRIX_AGREEMENT = """
@id("m.hits") @reason("hits on lines and people")
permit (principal, action == Action::"search_hits", resource)
when { ["county_line", "person"].contains(resource.kind) };

@id("m.read") @reason("analysts read lines and people")
permit (principal, action == Action::"read_record", resource)
when { ["county_line", "person"].contains(resource.kind) && principal.roles.contains("analyst") };

@id("m.identity") @reason("identity")
permit (principal, action == Action::"identity", resource)
unless { resource.subject_categories.contains("VICTIM") };

@id("m.identity_victim") @obligation("mask") @reason("victim identity masked")
permit (principal, action == Action::"identity", resource)
when { resource.subject_categories.contains("VICTIM") };

@id("m.plain") @reason("plain groups")
permit (principal, action in [Action::"contact", Action::"vehicle", Action::"operational",
                              Action::"handling_conditions"], resource);

@id("m.location_district") @obligation("generalise_postcode") @reason("districts")
permit (principal, action == Action::"location_precise", resource)
unless { principal.vetting_rank >= 3 };

@id("m.location_precise") @reason("precise for NPPV3")
permit (principal, action == Action::"location_precise", resource)
when { principal.vetting_rank >= 3 };

@id("m.free_text") @reason("free text for NPPV3")
permit (principal, action == Action::"free_text", resource)
when { principal.vetting_rank >= 3 };

@id("m.victim") @reason("victim details for safeguarding")
permit (principal, action == Action::"victim_details", resource)
when { context.purpose == "safeguarding" };

@id("m.sensitive") @reason("sensitive categories for vetted safeguarding")
permit (principal, action == Action::"sensitive_categories", resource)
when { context.purpose == "safeguarding" && principal.vetting_rank >= 3 };

@id("m.hide_events") @visibility("hidden") @reason("events are never hits")
forbid (principal, action, resource) when { resource.kind == "event" };
"""

POINTER_AGREEMENT = """
@id("p.hits") @reason("force 01 shares pointers")
permit (principal, action == Action::"search_hits", resource)
when { resource.owner_force == "01" };
"""

A_PARTIES = {"05", "20"}
A_PURPOSES = {Purpose.INVESTIGATION, Purpose.SAFEGUARDING}
B_PARTIES = {"01", "05", "20"}
RANK = {
    VettingLevel.NPPV1: 0,
    VettingLevel.NPPV2: 2,
    VettingLevel.NPPV3: 3,
}


@pytest.fixture(scope="module")
def matrix_engine(tmp_path_factory: pytest.TempPathFactory) -> PolicyEngine:
    root: Path = tmp_path_factory.mktemp("matrix")
    write_agreement(root, "matrix-a", MATRIX_AGREEMENT, parties=tuple(A_PARTIES))
    write_agreement(
        root,
        "pointers-b",
        POINTER_AGREEMENT,
        parties=("01", "05", "20"),
        purposes=tuple(p.value for p in Purpose),
    )
    return PolicyEngine.load(root)


def _p(
    user: str,
    force: str,
    vetting: VettingLevel,
    roles: tuple[str, ...] = ("analyst",),
    suspended: bool = False,
) -> Principal:
    return Principal(user, force, frozenset(roles), vetting, force_suspended=suspended)


PRINCIPALS = [
    _p("a20-2", "20", VettingLevel.NPPV2),
    _p("a20-3", "20", VettingLevel.NPPV3),
    _p("a20-1", "20", VettingLevel.NPPV1),
    _p("v20-3", "20", VettingLevel.NPPV3, roles=()),
    _p("s20-3", "20", VettingLevel.NPPV3, suspended=True),
    _p("a63-3", "63", VettingLevel.NPPV3),
    _p("a01-3", "01", VettingLevel.NPPV3),
    _p("a05-2", "05", VettingLevel.NPPV2),
]

_LINE = RecordAttributes("05", "county_line", ClassificationRank.OFFICIAL_SENSITIVE)
RECORDS = [
    _LINE,
    replace(_LINE, classification=ClassificationRank.OFFICIAL),
    replace(_LINE, classification=ClassificationRank.SECRET),
    replace(
        _LINE,
        kind="person",
        subject_categories=frozenset({SubjectCategory.VICTIM}),
        sensitive_categories=frozenset({SensitiveCategory.HEALTH}),
    ),
    replace(_LINE, kind="event"),
    replace(_LINE, kind="vehicle"),
    replace(_LINE, handling_code=HandlingCode.C, condition_forces=frozenset({"20"})),
    replace(_LINE, handling_code=HandlingCode.C, condition_forces=frozenset({"01"})),
    replace(_LINE, retention_review_overdue=True),
    replace(_LINE, retention_review_overdue=True, retain_decision=True),
    replace(_LINE, owner_force="01"),
    replace(_LINE, owner_force="01", kind="event"),
]
PURPOSES: list[Purpose | None] = [
    Purpose.INVESTIGATION,
    Purpose.SAFEGUARDING,
    Purpose.PREVENTION,
    None,
]
MODES = [Mode.RECORDS, Mode.HITS]


def expected(
    p: Principal, r: RecordAttributes, purpose: Purpose | None, mode: Mode
) -> tuple[Outcome, set[str]]:
    """The outcome and the withheld groups, by the rules the agreements above are meant to say."""
    all_groups = {g.value for g in POLICY_FIELD_GROUPS}
    a_between = p.force in A_PARTIES and r.owner_force in A_PARTIES
    b_between = p.force in B_PARTIES and r.owner_force in B_PARTIES
    a_applies = a_between and purpose in A_PURPOSES
    b_applies = b_between and purpose is not None
    if a_applies and r.kind == "event":
        return Outcome.HIDDEN, all_groups
    if not (a_between or b_between):
        return Outcome.HIDDEN, all_groups
    rank = RANK[p.vetting]
    conditions_block = (
        r.handling_code is HandlingCode.C
        and p.force != r.owner_force
        and p.force not in r.condition_forces
    )
    if (
        rank < r.classification
        or purpose is None
        or (r.retention_review_overdue and not r.retain_decision)
        or p.force_suspended
        or conditions_block
    ):
        return Outcome.DENIED, all_groups
    covered = r.kind in {"county_line", "person"}
    read = a_applies and covered and "analyst" in p.roles
    hits = (a_applies and covered) or (b_applies and r.owner_force == "01")
    if mode is Mode.RECORDS and read:
        released = {
            "contact",
            "vehicle",
            "operational",
            "handling_conditions",
            "identity",
            "location_precise",
        }
        obligations = SubjectCategory.VICTIM in r.subject_categories or rank < 3
        if rank >= 3:
            released.add("free_text")
        if purpose is Purpose.SAFEGUARDING:
            released.add("victim_details")
            if rank >= 3:
                released.add("sensitive_categories")
        withheld = all_groups - released
        full = not withheld and not obligations
        return (Outcome.FULL if full else Outcome.REDACTED), withheld
    if hits or (mode is Mode.HITS and read):
        return Outcome.POINTER, all_groups
    return Outcome.DENIED, all_groups


CASES = list(itertools.product(range(len(PRINCIPALS)), range(len(RECORDS)), PURPOSES, MODES))


def test_matrix_is_large_and_reaches_every_outcome() -> None:
    assert len(CASES) >= 200
    outcomes = {
        expected(PRINCIPALS[p], RECORDS[r], purpose, mode)[0] for p, r, purpose, mode in CASES
    }
    assert outcomes == set(Outcome)


@pytest.mark.parametrize(
    ("p_index", "r_index", "purpose", "mode"),
    CASES,
    ids=[f"p{p}-r{r}-{purpose or 'none'}-{mode.value}" for p, r, purpose, mode in CASES],
)
def test_decision_matches_independent_rules(
    matrix_engine: PolicyEngine, p_index: int, r_index: int, purpose: Purpose | None, mode: Mode
) -> None:
    principal, record = PRINCIPALS[p_index], RECORDS[r_index]
    context = PolicyContext(purpose=purpose, case_reference="OP-M-1", time=WHEN, mode=mode)
    decision = matrix_engine.decide(principal, record, context)
    outcome, withheld = expected(principal, record, purpose, mode)
    assert decision.outcome is outcome, decision.reason
    assert {g.value for g in decision.withheld_groups} == withheld
    assert decision.policy_hash == matrix_engine.policy_hash
    assert decision.reason
