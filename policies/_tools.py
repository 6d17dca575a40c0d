"""What the policy owners' tools do, as pure functions: check a policy directory, run its table
tests, explain one decision. `gateway policy check|test|explain` only renders these results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import yaml

from policies._engine import AgreementFit, PolicyEngine
from policies._loading import (
    DEFAULT_BASE_DIR,
    DEFAULT_SCHEMA_PATH,
    LoadedPolicySet,
    PolicyLoadError,
    load_policy_set,
)
from policies._model import (
    KNOWN_OBLIGATIONS,
    Decision,
    PolicyContext,
    PolicyInputError,
    Principal,
    RecordAttributes,
    context_from_mapping,
    principal_from_mapping,
    record_from_mapping,
)
from schemas.forces import is_force_code

EXPIRY_WARNING_DAYS = 30


@dataclass(frozen=True, slots=True)
class AgreementSummary:
    id: str
    title: str
    parties: tuple[str, ...]
    purposes: tuple[str, ...]
    legal_basis: str
    start: date
    end: date
    review: date
    owner_contact: str
    status: str  # "in force", "expired", "not yet in force"
    days_to_expiry: int
    policy_count: int


@dataclass(frozen=True, slots=True)
class CheckReport:
    ok: bool
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    agreements: tuple[AgreementSummary, ...]
    policy_hash: str | None
    policy_count: int


def _summaries(loaded: LoadedPolicySet, today: date) -> list[AgreementSummary]:
    summaries = []
    for agreement in loaded.agreements:
        meta = agreement.metadata
        status = (
            "in force"
            if meta.in_force(today)
            else ("not yet in force" if today < meta.start else "expired")
        )
        summaries.append(
            AgreementSummary(
                id=meta.id,
                title=meta.title,
                parties=meta.parties,
                purposes=tuple(p.value for p in meta.purposes),
                legal_basis=meta.legal_basis,
                start=meta.start,
                end=meta.end,
                review=meta.review,
                owner_contact=meta.owner_contact,
                status=status,
                days_to_expiry=(meta.end - today).days,
                policy_count=len(agreement.policy_ids),
            )
        )
    return summaries


def check_policy_dir(
    directory: Path,
    *,
    today: date,
    base_dir: Path = DEFAULT_BASE_DIR,
    schema_path: Path = DEFAULT_SCHEMA_PATH,
) -> CheckReport:
    """Validate a policy directory against the schema and report on its agreements."""
    try:
        loaded = load_policy_set(directory, base_dir=base_dir, schema_path=schema_path)
    except PolicyLoadError as exc:
        return CheckReport(False, exc.problems, (), (), None, 0)
    warnings: list[str] = []
    summaries = _summaries(loaded, today)
    for summary in summaries:
        where = f"agreement {summary.id}"
        if summary.status == "expired":
            warnings.append(f"{where} expired on {summary.end.isoformat()}: it grants nothing")
        elif summary.status == "not yet in force":
            warnings.append(f"{where} is not in force until {summary.start.isoformat()}")
        elif summary.days_to_expiry <= EXPIRY_WARNING_DAYS:
            warnings.append(
                f"{where} expires in {summary.days_to_expiry} days ({summary.end.isoformat()})"
            )
        if summary.review < today and summary.status != "expired":
            warnings.append(f"{where} was due for review on {summary.review.isoformat()}")
        unknown = [p for p in summary.parties if not is_force_code(p)]
        if unknown:
            warnings.append(f"{where} names unknown force codes: {', '.join(unknown)}")
        if summary.policy_count == 0:
            warnings.append(f"{where} has no policies: it grants nothing")
    for info in loaded.policies.values():
        unknown_obligations = [o for o in info.obligations if o not in KNOWN_OBLIGATIONS]
        if unknown_obligations:
            warnings.append(
                f"{info.source} [{info.id}]: unknown obligation {unknown_obligations[0]!r} "
                "makes every decision it takes part in `denied`"
            )
    return CheckReport(
        True, (), tuple(warnings), tuple(summaries), loaded.policy_hash, len(loaded.policies)
    )


@dataclass(frozen=True, slots=True)
class CaseResult:
    file: str
    name: str
    passed: bool
    failures: tuple[str, ...]
    decision: Decision | None


@dataclass(frozen=True, slots=True)
class PolicyTestReport:
    results: tuple[CaseResult, ...]
    errors: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        return not self.errors and self.failed == 0 and bool(self.results)


def _resolve(value: Any, named: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A case's principal/record/context: a name, a mapping, or {use: name, ...overrides}."""
    if isinstance(value, str):
        if value not in named:
            raise PolicyInputError(f"unknown {what} {value!r}")
        return dict(named[value])
    if isinstance(value, Mapping):
        data = dict(value)
        base = data.pop("use", None)
        if base is None:
            return data
        merged = _resolve(base, named, what)
        merged.update(data)
        return merged
    raise PolicyInputError(f"{what} must be a name or a mapping")


def _as_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(12, 0), tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_case(case: Mapping[str, Any], decision: Decision) -> list[str]:
    expect = case.get("expect")
    if not isinstance(expect, Mapping) or "decision" not in expect:
        return ["`expect` must give at least a `decision`"]
    failures = []
    if decision.outcome.value != expect["decision"]:
        failures.append(
            f"decision: expected {expect['decision']}, got {decision.outcome.value} "
            f"({decision.reason})"
        )
    if "withheld" in expect:
        wanted = set(expect["withheld"] or [])
        got = {g.value for g in decision.withheld_groups}
        if wanted != got:
            failures.append(f"withheld: expected {sorted(wanted)}, got {sorted(got)}")
    if "obligations" in expect:
        wanted_obligations = {k: set(v) for k, v in (expect["obligations"] or {}).items()}
        got_obligations = {
            g.value: {o.value for o in obs} for g, obs in decision.obligations.items()
        }
        if wanted_obligations != got_obligations:
            failures.append(f"obligations: expected {wanted_obligations}, got {got_obligations}")
    for pid in expect.get("policy_ids", []) or []:
        if pid not in decision.policy_ids:
            failures.append(f"policy_ids: {pid} did not decide (got {list(decision.policy_ids)})")
    return failures


def run_policy_tests(
    directory: Path,
    *,
    tests_dir: Path | None = None,
    base_dir: Path = DEFAULT_BASE_DIR,
    schema_path: Path = DEFAULT_SCHEMA_PATH,
) -> PolicyTestReport:
    """Run the YAML table tests kept in `directory/tests/` against the directory's policies."""
    try:
        engine = PolicyEngine.load(directory, base_dir=base_dir, schema_path=schema_path)
    except PolicyLoadError as exc:
        return PolicyTestReport((), exc.problems)
    folder = tests_dir or directory / "tests"
    files = sorted(folder.glob("*.yaml"))
    if not files:
        return PolicyTestReport((), (f"{folder}: no *.yaml test tables found",))
    results: list[CaseResult] = []
    errors: list[str] = []
    for path in files:
        try:
            table = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            errors.append(f"{path.name}: not valid YAML: {exc}")
            continue
        if not isinstance(table, Mapping) or not isinstance(table.get("cases"), list):
            errors.append(f"{path.name}: expected a mapping with a `cases` list")
            continue
        default_time = _as_time(table.get("time", datetime.now(UTC)))
        for number, case in enumerate(table["cases"], start=1):
            name = str(case.get("name", f"case {number}")) if isinstance(case, Mapping) else ""
            try:
                if not isinstance(case, Mapping):
                    raise PolicyInputError("a case must be a mapping")
                principal = principal_from_mapping(
                    _resolve(case.get("principal"), table.get("principals") or {}, "principal")
                )
                record = record_from_mapping(
                    _resolve(case.get("record"), table.get("records") or {}, "record")
                )
                raw_context = _resolve(case.get("context"), table.get("contexts") or {}, "context")
                if "time" in raw_context:
                    raw_context["time"] = _as_time(raw_context["time"])
                context = context_from_mapping(raw_context, default_time=default_time)
            except PolicyInputError as exc:
                results.append(CaseResult(path.name, name, False, (str(exc),), None))
                continue
            decision = engine.decide(principal, record, context)
            failures = _check_case(case, decision)
            results.append(CaseResult(path.name, name, not failures, tuple(failures), decision))
    return PolicyTestReport(tuple(results), tuple(errors))


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    agreements: tuple[AgreementFit, ...]

    def to_json(self) -> dict[str, Any]:
        decision = self.decision
        return {
            **decision.audit_summary(),
            "contact": decision.contact,
            "field_groups": [
                {
                    "group": fate.group.value,
                    "released": fate.released,
                    "obligations": sorted(fate.obligations),
                    "policy_ids": list(fate.policy_ids),
                    "reason": fate.reason,
                }
                for fate in decision.fates
            ],
            "agreements": [
                {"id": fit.agreement_id, "applies": fit.applies, "why_not": fit.why_not}
                for fit in self.agreements
            ],
        }


def explain(
    engine: PolicyEngine, principal: Principal, record: RecordAttributes, context: PolicyContext
) -> Explanation:
    """The decision for one request with each field group's fate and each agreement's fit."""
    decision = engine.decide(principal, record, context)
    return Explanation(decision, tuple(engine.agreement_fits(principal, record, context)))
