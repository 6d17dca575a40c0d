"""A 200-record answer is decided per equivalence class: a handful of Cedar calls, not hundreds."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from policies import (
    EXAMPLE_POLICY_DIR,
    Mode,
    PolicyContext,
    PolicyEngine,
    Principal,
    RecordAttributes,
)
from schemas.enums import ClassificationRank, Purpose, SubjectCategory, VettingLevel
from tests.policies.conftest import READ_ALL, WHEN, write_agreement

PRINCIPAL = Principal("u20", "20", frozenset({"analyst"}), VettingLevel.NPPV2)
CONTEXT = PolicyContext(Purpose.INVESTIGATION, "OP-1", WHEN)
_BASE = RecordAttributes("05", "county_line", ClassificationRank.OFFICIAL_SENSITIVE)
CLASSES = [
    _BASE,
    replace(_BASE, kind="person"),
    replace(_BASE, kind="person", subject_categories=frozenset({SubjectCategory.VICTIM})),
    replace(_BASE, classification=ClassificationRank.OFFICIAL),
    replace(_BASE, owner_force="01"),
]
ANSWER = [CLASSES[i % len(CLASSES)] for i in range(200)]


@pytest.fixture
def fresh_engine() -> PolicyEngine:
    """The example policies with no decisions kept across requests: every request asks Cedar."""
    return PolicyEngine.load(EXAMPLE_POLICY_DIR, shared_decisions=0)


def test_two_hundred_records_cost_one_cedar_call_per_policy_subset(
    fresh_engine: PolicyEngine,
) -> None:
    example_engine = fresh_engine
    calls_before, requests_before = example_engine.cedar_calls, example_engine.cedar_requests
    cache = example_engine.request_cache(PRINCIPAL, CONTEXT)

    decisions = cache.decide_all(ANSWER)

    assert len(decisions) == 200
    assert cache.classes_decided == len(CLASSES)
    # Owners 05 and 01 fall under different agreement subsets: one batch each.
    assert example_engine.cedar_calls - calls_before == 2
    assert example_engine.cedar_requests - requests_before == len(CLASSES) * 11
    for record, decision in zip(ANSWER, decisions, strict=True):
        assert decision == example_engine.decide(PRINCIPAL, record, CONTEXT)


def test_records_decided_one_by_one_still_cost_one_call_per_class(
    fresh_engine: PolicyEngine,
) -> None:
    example_engine = fresh_engine
    cache = example_engine.request_cache(PRINCIPAL, CONTEXT)
    before = example_engine.cedar_calls
    for record in ANSWER:
        cache.decide(record)
    assert example_engine.cedar_calls - before == len(CLASSES)
    again = example_engine.cedar_calls
    cache.decide_all(ANSWER)
    assert example_engine.cedar_calls == again


def test_equal_attributes_share_a_decision_object(example_engine: PolicyEngine) -> None:
    cache = example_engine.request_cache(PRINCIPAL, CONTEXT)
    first, second = cache.decide_all([_BASE, replace(_BASE)])
    assert first is second


# --- decisions kept across requests -------------------------------------------------------------


def _calls_for(engine: PolicyEngine, principal: Principal, context: PolicyContext) -> int:
    before = engine.cedar_calls
    engine.request_cache(principal, context).decide_all(ANSWER)
    return engine.cedar_calls - before


def test_a_repeated_request_is_decided_from_the_kept_decisions_with_no_cedar_call() -> None:
    engine = PolicyEngine.load(EXAMPLE_POLICY_DIR)
    uncached = PolicyEngine.load(EXAMPLE_POLICY_DIR, shared_decisions=0)
    assert _calls_for(engine, PRINCIPAL, CONTEXT) == 2
    later = replace(CONTEXT, time=WHEN + timedelta(hours=3))  # the same day, another hour

    assert _calls_for(engine, PRINCIPAL, later) == 0

    assert engine.shared.hits == len(CLASSES)
    kept = engine.request_cache(PRINCIPAL, later).decide_all(ANSWER)
    assert kept == uncached.request_cache(PRINCIPAL, later).decide_all(ANSWER)


@pytest.mark.parametrize(
    ("principal", "context"),
    [
        (replace(PRINCIPAL, user_id="u21"), CONTEXT),
        (replace(PRINCIPAL, roles=frozenset({"investigator"})), CONTEXT),
        (replace(PRINCIPAL, vetting=VettingLevel.NPPV3), CONTEXT),
        (replace(PRINCIPAL, units=frozenset({"ocg"})), CONTEXT),
        (replace(PRINCIPAL, force_suspended=True), CONTEXT),
        (PRINCIPAL, replace(CONTEXT, purpose=Purpose.SAFEGUARDING)),
        (PRINCIPAL, replace(CONTEXT, case_reference="OP-2")),
        (PRINCIPAL, replace(CONTEXT, justification_present=True)),
        (PRINCIPAL, replace(CONTEXT, mode=Mode.HITS)),
        (PRINCIPAL, replace(CONTEXT, requesting_force="20")),
        (PRINCIPAL, replace(CONTEXT, time=WHEN + timedelta(days=1))),
        # The same instant, but another day where the request was made: agreements go by day.
        (PRINCIPAL, replace(CONTEXT, time=WHEN.astimezone(timezone(timedelta(hours=-11))))),
    ],
)
def test_anything_else_that_differs_is_decided_by_cedar_again(
    principal: Principal, context: PolicyContext
) -> None:
    engine = PolicyEngine.load(EXAMPLE_POLICY_DIR)
    _calls_for(engine, PRINCIPAL, CONTEXT)
    assert _calls_for(engine, principal, context) >= 1


def test_a_policy_that_reads_the_time_keeps_decisions_for_that_second_only(
    tmp_path: Path,
) -> None:
    cutoff = WHEN + timedelta(minutes=30)
    until = f'when {{ context.now < datetime("{cutoff:%Y-%m-%dT%H:%M:%SZ}") }};'
    write_agreement(
        tmp_path, "until-half-past", READ_ALL.replace("resource);", f"resource) {until}")
    )
    engine = PolicyEngine.load(tmp_path)
    assert engine.policy_set.reads_now
    record = replace(_BASE, classification=ClassificationRank.OFFICIAL)

    before = engine.request_cache(PRINCIPAL, CONTEXT).decide(record)
    after = engine.request_cache(PRINCIPAL, replace(CONTEXT, time=cutoff)).decide(record)
    again = engine.request_cache(PRINCIPAL, CONTEXT).decide(record)

    assert before.outcome.value == "full"
    assert after.outcome.value == "denied"
    assert again == before
    assert engine.shared.hits == 1


def test_a_reloaded_policy_set_never_reuses_the_old_decisions(tmp_path: Path) -> None:
    write_agreement(tmp_path, "all", READ_ALL)
    engine = PolicyEngine.load(tmp_path)
    record = replace(_BASE, classification=ClassificationRank.OFFICIAL)
    assert engine.decide(PRINCIPAL, record, CONTEXT).outcome.value == "full"
    # Only the hits rule is left: a record can no longer be read.
    (tmp_path / "agreements" / "all.cedar").write_text(
        READ_ALL.split('@id("t.read")')[0], encoding="utf-8"
    )

    assert engine.reload().changed

    assert engine.decide(PRINCIPAL, record, CONTEXT).outcome.value != "full"


def test_kept_decisions_are_bounded() -> None:
    engine = PolicyEngine.load(EXAMPLE_POLICY_DIR, shared_decisions=3)
    engine.request_cache(PRINCIPAL, CONTEXT).decide_all(ANSWER)
    assert len(engine.shared) == 3
    assert len(PolicyEngine.load(EXAMPLE_POLICY_DIR, shared_decisions=0).shared) == 0
