"""Each national base rule on its own: the request is otherwise fully permitted (an agreement that
permits everything is in force), and breaking one rule denies it, naming that rule."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from policies import Outcome, PolicyContext, PolicyEngine, Principal, RecordAttributes
from schemas.enums import ClassificationRank, HandlingCode, Purpose, VettingLevel
from tests.policies.conftest import READ_ALL, WHEN, write_agreement

PRINCIPAL = Principal("u20", "20", frozenset({"analyst"}), VettingLevel.NPPV2)
RECORD = RecordAttributes("05", "county_line", ClassificationRank.OFFICIAL_SENSITIVE)
CONTEXT = PolicyContext(Purpose.INVESTIGATION, "OP-1", WHEN)


@pytest.fixture(scope="module")
def open_engine(tmp_path_factory: pytest.TempPathFactory) -> PolicyEngine:
    root: Path = tmp_path_factory.mktemp("open")
    write_agreement(root, "open", READ_ALL)
    return PolicyEngine.load(root)


def test_without_breaking_a_rule_everything_is_released(open_engine: PolicyEngine) -> None:
    decision = open_engine.decide(PRINCIPAL, RECORD, CONTEXT)
    assert decision.outcome is Outcome.FULL
    assert not decision.withheld_groups


@pytest.mark.parametrize(
    ("principal", "record", "context", "rule"),
    [
        pytest.param(
            replace(PRINCIPAL, vetting=VettingLevel.NPPV1),
            RECORD,
            CONTEXT,
            "base.vetting_below_classification",
            id="vetting-npp1-official-sensitive",
        ),
        pytest.param(
            PRINCIPAL,
            replace(RECORD, classification=ClassificationRank.SECRET),
            CONTEXT,
            "base.vetting_below_classification",
            id="vetting-nppv2-secret",
        ),
        pytest.param(
            PRINCIPAL,
            RECORD,
            replace(CONTEXT, purpose=None),
            "base.purpose_missing",
            id="no-purpose",
        ),
        pytest.param(
            PRINCIPAL,
            RECORD,
            replace(CONTEXT, case_reference=None),
            "base.case_reference_missing",
            id="no-case-reference",
        ),
        pytest.param(
            PRINCIPAL,
            RECORD,
            replace(CONTEXT, case_reference=" \t "),
            "base.case_reference_missing",
            id="blank-case-reference",
        ),
        pytest.param(
            PRINCIPAL,
            replace(RECORD, retention_review_overdue=True),
            CONTEXT,
            "base.retention_review_overdue",
            id="retention-overdue",
        ),
        pytest.param(
            replace(PRINCIPAL, force_suspended=True),
            RECORD,
            CONTEXT,
            "base.force_suspended",
            id="force-suspended",
        ),
        pytest.param(
            PRINCIPAL,
            replace(RECORD, handling_code=HandlingCode.C, condition_forces=frozenset({"01"})),
            CONTEXT,
            "base.handling_conditions_name_forces",
            id="handling-c-other-force",
        ),
        pytest.param(
            PRINCIPAL,
            replace(RECORD, handling_code=HandlingCode.C),
            CONTEXT,
            "base.handling_conditions_name_forces",
            id="handling-c-no-force-named",
        ),
    ],
)
def test_base_rule_denies_on_its_own(
    open_engine: PolicyEngine,
    principal: Principal,
    record: RecordAttributes,
    context: PolicyContext,
    rule: str,
) -> None:
    decision = open_engine.decide(principal, record, context)
    assert decision.outcome is Outcome.DENIED
    assert decision.policy_ids == (rule,)
    assert decision.reason == open_engine.policy_set.policies[rule].reason
    assert decision.permitted_groups == frozenset()


@pytest.mark.parametrize(
    ("principal", "record"),
    [
        pytest.param(
            PRINCIPAL,
            replace(RECORD, retention_review_overdue=True, retain_decision=True),
            id="retained-after-review",
        ),
        pytest.param(
            PRINCIPAL,
            replace(RECORD, handling_code=HandlingCode.C, condition_forces=frozenset({"20"})),
            id="c-names-force",
        ),
        pytest.param(
            replace(PRINCIPAL, force="05"),
            replace(RECORD, handling_code=HandlingCode.C),
            id="c-owner-force-itself",
        ),
        pytest.param(
            replace(PRINCIPAL, vetting=VettingLevel.SC),
            replace(RECORD, classification=ClassificationRank.SECRET),
            id="sc-secret",
        ),
    ],
)
def test_base_rule_boundaries_allow(
    open_engine: PolicyEngine, principal: Principal, record: RecordAttributes
) -> None:
    assert open_engine.decide(principal, record, CONTEXT).outcome is Outcome.FULL


def test_agreement_permit_cannot_override_a_base_rule(tmp_path: Path) -> None:
    # An agreement that explicitly permits low-vetted readers still loses to the base forbid.
    write_agreement(
        tmp_path,
        "eager",
        READ_ALL.replace(
            'permit (principal, action == Action::"read_record", resource);',
            'permit (principal, action == Action::"read_record", resource)\n'
            "when { principal.vetting_rank < resource.classification_rank };",
        ),
    )
    engine = PolicyEngine.load(tmp_path)
    low = replace(PRINCIPAL, vetting=VettingLevel.NONE)
    assert engine.decide(low, RECORD, CONTEXT).outcome is Outcome.DENIED
