"""Policy decision cost for one 200-record answer: per equivalence class vs naive evaluation.

Run: `.venv/bin/python bench/policy_bench.py [--quick]`. Goal: a 200-record answer decided in
<= 5 ms (median) with the shipped example policies.

The per-class and naive figures are decided afresh on every request (`shared_decisions=0`);
`kept_decisions_median_ms` is the same answer once an earlier request of the same analyst and
context has decided its classes (the engine's decisions kept across requests).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from policies import (
    ALL_ACTIONS,
    EXAMPLE_POLICY_DIR,
    POLICY_FIELD_GROUPS,
    PolicyContext,
    PolicyEngine,
    Principal,
    RecordAttributes,
)
from schemas.enums import ClassificationRank, Purpose, SubjectCategory, VettingLevel

PRINCIPAL = Principal("wmp-analyst-1", "20", frozenset({"analyst"}), VettingLevel.NPPV2)
CONTEXT = PolicyContext(Purpose.INVESTIGATION, "OP-BENCH-1", datetime(2026, 6, 1, tzinfo=UTC))
_BASE = RecordAttributes("05", "county_line", ClassificationRank.OFFICIAL_SENSITIVE)
# A realistic answer: a few kinds and markings from two owning forces.
CLASSES = [
    _BASE,
    replace(_BASE, kind="person"),
    replace(_BASE, kind="person", subject_categories=frozenset({SubjectCategory.SUSPECT})),
    replace(_BASE, kind="person", subject_categories=frozenset({SubjectCategory.VICTIM})),
    replace(_BASE, kind="phone"),
    replace(_BASE, kind="vehicle", classification=ClassificationRank.OFFICIAL),
    replace(_BASE, owner_force="01", kind="person"),
]
ANSWER = [CLASSES[i % len(CLASSES)] for i in range(200)]
DISTINCT = [replace(_BASE, condition_forces=frozenset({f"{i:03d}"})) for i in range(200)]


def _median_ms(run: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 3)


def main(quick: bool) -> dict[str, Any]:
    engine = PolicyEngine.load(EXAMPLE_POLICY_DIR, shared_decisions=0)
    engine.request_cache(PRINCIPAL, CONTEXT).decide_all(ANSWER)  # warm policy-set parsing
    keeping = PolicyEngine.load(EXAMPLE_POLICY_DIR)
    keeping.request_cache(PRINCIPAL, CONTEXT).decide_all(ANSWER)  # the earlier request

    def kept() -> None:
        keeping.request_cache(PRINCIPAL, CONTEXT).decide_all(ANSWER)

    def per_class() -> None:
        engine.request_cache(PRINCIPAL, CONTEXT).decide_all(ANSWER)

    def distinct_classes() -> None:
        engine.request_cache(PRINCIPAL, CONTEXT).decide_all(DISTINCT)

    def naive() -> None:
        for record in ANSWER:
            for action in ALL_ACTIONS:
                engine.authorize_action(PRINCIPAL, record, CONTEXT, action)

    calls = engine.cedar_calls
    per_class()
    calls_per_answer = engine.cedar_calls - calls

    single_runs = 300 if quick else 3000
    started = time.perf_counter()
    for _ in range(single_runs):
        engine.decide(PRINCIPAL, _BASE, CONTEXT)
    single_per_s = round(single_runs / (time.perf_counter() - started))

    return {
        "records": len(ANSWER),
        "equivalence_classes": len(CLASSES),
        "field_groups": len(POLICY_FIELD_GROUPS),
        "cedar_calls_per_answer": calls_per_answer,
        "per_class_median_ms": _median_ms(per_class, 20 if quick else 200),
        "kept_decisions_median_ms": _median_ms(kept, 20 if quick else 200),
        "all_distinct_classes_median_ms": _median_ms(distinct_classes, 3 if quick else 20),
        "naive_per_record_per_action_median_ms": _median_ms(naive, 1 if quick else 5),
        "single_decisions_per_s": single_per_s,
        "goal_ms": 5.0,
    }


if __name__ == "__main__":
    print(json.dumps(main(quick="--quick" in sys.argv), indent=2))
