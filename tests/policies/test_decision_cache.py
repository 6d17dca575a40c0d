"""A 200-record answer is decided per equivalence class: a handful of Cedar calls, not hundreds."""

from __future__ import annotations

from dataclasses import replace

from policies import PolicyContext, PolicyEngine, Principal, RecordAttributes
from schemas.enums import ClassificationRank, Purpose, SubjectCategory, VettingLevel
from tests.policies.conftest import WHEN

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


def test_two_hundred_records_cost_one_cedar_call_per_policy_subset(
    example_engine: PolicyEngine,
) -> None:
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
    example_engine: PolicyEngine,
) -> None:
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
