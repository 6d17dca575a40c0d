"""The values policy decisions are made over and the decisions themselves.

`Principal`, `RecordAttributes` and `PolicyContext` are what the gateway hands in; `Decision` is
what it gets back and writes into the audit entry. `RecordAttributes` is deliberately only the
envelope attributes that policies read, so two records with equal attributes are one equivalence
class and share one decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, TypeAdapter, ValidationError

from schemas.enums import (
    ClassificationRank,
    HandlingCode,
    Purpose,
    SensitiveCategory,
    SubjectCategory,
    VettingLevel,
    vetting_rank,
)
from schemas.fields import FieldGroup

# Field groups that policy releases one by one (one Cedar action each). Any other group (the
# envelope: ids, markings, grading, categories) always travels with a record that is shown at all,
# because markings and grades must go with the data (domain reference 10.4.6).
POLICY_FIELD_GROUPS: tuple[FieldGroup, ...] = (
    FieldGroup.IDENTITY,
    FieldGroup.CONTACT,
    FieldGroup.LOCATION_PRECISE,
    FieldGroup.VEHICLE,
    FieldGroup.VICTIM_DETAILS,
    FieldGroup.FREE_TEXT,
    FieldGroup.HANDLING_CONDITIONS,
    FieldGroup.SENSITIVE_CATEGORIES,
    FieldGroup.OPERATIONAL,
)

SEARCH_HITS = "search_hits"
READ_RECORD = "read_record"
ALL_ACTIONS: tuple[str, ...] = (SEARCH_HITS, READ_RECORD, *(g.value for g in POLICY_FIELD_GROUPS))


class Mode(StrEnum):
    """What a query asks for: Prüm-style hits only, or policy-filtered records."""

    HITS = "hits"
    RECORDS = "records"


class Outcome(StrEnum):
    """The five outcomes of a decision, from most to least disclosed."""

    FULL = "full"
    REDACTED = "redacted"
    POINTER = "pointer"  # N-DEx gray: the owner holds something, contact them
    HIDDEN = "hidden"  # N-DEx black: not even a hit
    DENIED = "denied"


class Obligation(StrEnum):
    """Field obligations the engine knows how to fulfil (anything else denies, XACML-style)."""

    DROP = "drop"
    MASK = "mask"
    GENERALISE_DATE = "generalise_date"
    GENERALISE_POSTCODE = "generalise_postcode"


KNOWN_OBLIGATIONS = frozenset(o.value for o in Obligation)


@dataclass(frozen=True, slots=True)
class Principal:
    """The person or force system asking, as the gateway established it from the token."""

    user_id: str
    force: str
    roles: frozenset[str] = frozenset()
    vetting: VettingLevel = VettingLevel.NONE
    units: frozenset[str] = frozenset()
    is_system_client: bool = False
    # Supplied by the gateway from the federation manifest (member status), not from the token.
    force_suspended: bool = False

    __pydantic_config__ = ConfigDict(extra="forbid")


def _classification(value: Any) -> Any:
    # Policy owners write "OFFICIAL_SENSITIVE" in YAML and JSON; code passes the rank itself.
    if isinstance(value, str) and value in ClassificationRank.__members__:
        return ClassificationRank[value]
    return value


@dataclass(frozen=True, slots=True)
class RecordAttributes:
    """The envelope attributes policies read: equal attributes, equal decision."""

    owner_force: str
    kind: str
    classification: Annotated[ClassificationRank, BeforeValidator(_classification)]
    handling_code: HandlingCode = HandlingCode.P
    condition_forces: frozenset[str] = frozenset()
    subject_categories: frozenset[SubjectCategory] = frozenset()
    sensitive_categories: frozenset[SensitiveCategory] = frozenset()
    retention_review_overdue: bool = False
    retain_decision: bool = False

    __pydantic_config__ = ConfigDict(extra="forbid")

    @property
    def conditions_apply(self) -> bool:
        return self.handling_code is HandlingCode.C


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """Why and when the principal asks; the same for every record of one request."""

    purpose: Purpose | None
    case_reference: str | None
    time: datetime
    mode: Mode = Mode.RECORDS
    justification_present: bool = False
    requesting_force: str = ""

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("PolicyContext.time must be timezone-aware")


@dataclass(frozen=True, slots=True)
class GroupFate:
    """What happened to one field group, and which policies decided it."""

    group: FieldGroup
    released: bool
    obligations: frozenset[str]
    policy_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision for a (principal, record class, context); goes into the audit entry."""

    outcome: Outcome
    permitted_groups: frozenset[FieldGroup]
    withheld_groups: frozenset[FieldGroup]
    obligations: Mapping[FieldGroup, frozenset[Obligation]]
    policy_ids: tuple[str, ...]
    reason: str
    policy_hash: str
    agreement_ids: tuple[str, ...] = ()
    contact: str | None = None
    fates: tuple[GroupFate, ...] = field(default=())

    def audit_summary(self) -> dict[str, Any]:
        """The JSON-ready part of the decision the audit entry records."""
        return {
            "outcome": self.outcome.value,
            "policy_ids": list(self.policy_ids),
            "policy_hash": self.policy_hash,
            "reason": self.reason,
            "agreement_ids": list(self.agreement_ids),
            "withheld_groups": sorted(g.value for g in self.withheld_groups),
            "obligations": {
                g.value: sorted(o.value for o in obs) for g, obs in sorted(self.obligations.items())
            },
        }


class PolicyInputError(ValueError):
    """A principal, record or context given as plain data (YAML, JSON) is not valid."""


_PRINCIPAL = TypeAdapter(Principal)
_RECORD = TypeAdapter(RecordAttributes)


def _validated(adapter: TypeAdapter[Any], data: Mapping[str, Any], what: str) -> Any:
    try:
        return adapter.validate_python(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or what}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyInputError(f"invalid {what}: {problems}") from None


def principal_from_mapping(data: Mapping[str, Any]) -> Principal:
    """A `Principal` from plain data (YAML test tables, `policy explain --principal`)."""
    result: Principal = _validated(_PRINCIPAL, data, "principal")
    return result


def record_from_mapping(data: Mapping[str, Any]) -> RecordAttributes:
    """`RecordAttributes` from plain data; `classification` may be a rank or its name."""
    result: RecordAttributes = _validated(_RECORD, data, "record")
    return result


def context_from_mapping(data: Mapping[str, Any], *, default_time: datetime) -> PolicyContext:
    """A `PolicyContext` from plain data; `time` defaults to `default_time` (an aware datetime)."""
    known = {
        "purpose",
        "case_reference",
        "time",
        "mode",
        "justification_present",
        "requesting_force",
    }
    unknown = set(data) - known
    if unknown:
        raise PolicyInputError(f"invalid context: unknown keys {sorted(unknown)}")
    try:
        raw_purpose = data.get("purpose")
        purpose = None if raw_purpose in (None, "") else Purpose(str(raw_purpose))
        raw_time = data.get("time", default_time)
        time = raw_time if isinstance(raw_time, datetime) else datetime.fromisoformat(str(raw_time))
        if time.tzinfo is None:
            time = time.replace(tzinfo=UTC)
        case_reference = data.get("case_reference")
        return PolicyContext(
            purpose=purpose,
            case_reference=None if case_reference in (None, "") else str(case_reference),
            time=time,
            mode=Mode(str(data.get("mode", Mode.RECORDS.value))),
            justification_present=bool(data.get("justification_present", False)),
            requesting_force=str(data.get("requesting_force", "")),
        )
    except ValueError as exc:
        raise PolicyInputError(f"invalid context: {exc}") from None


def principal_entity_attrs(principal: Principal) -> dict[str, Any]:
    """The Cedar attributes of a principal (see schema.cedarschema)."""
    return {
        "user_id": principal.user_id,
        "force": principal.force,
        "roles": sorted(principal.roles),
        "vetting_rank": vetting_rank(principal.vetting),
        "units": sorted(principal.units),
        "is_system_client": principal.is_system_client,
        "force_suspended": principal.force_suspended,
    }


def record_entity_attrs(record: RecordAttributes) -> dict[str, Any]:
    """The Cedar attributes of a record class (see schema.cedarschema)."""
    return {
        "owner_force": record.owner_force,
        "kind": record.kind,
        "classification_rank": int(record.classification),
        "handling_code": record.handling_code.value,
        "conditions_apply": record.conditions_apply,
        "condition_forces": sorted(record.condition_forces),
        "subject_categories": sorted(c.value for c in record.subject_categories),
        "sensitive_categories": sorted(c.value for c in record.sensitive_categories),
        "retention_review_overdue": record.retention_review_overdue,
        "retain_decision": record.retain_decision,
    }


def context_record(context: PolicyContext) -> dict[str, Any]:
    """The Cedar context of a request; absent purpose or case reference become empty strings,
    and so does a blank case reference (spaces only), whoever sent it."""
    instant = context.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "purpose": "" if context.purpose is None else context.purpose.value,
        "case_reference": (context.case_reference or "").strip(),
        "justification_present": context.justification_present,
        "mode": context.mode.value,
        "requesting_force": context.requesting_force,
        "now": {"__extn": {"fn": "datetime", "arg": instant}},
    }


def record_attributes_from_json(record_json: Mapping[str, Any], *, today: date) -> RecordAttributes:
    """The policy attributes of a stored record (its `model_dump(mode="json")` form).

    A record is overdue when its next review date has passed; a recorded retain decision keeps it
    available (base rule `base.retention_review_overdue`).
    """
    classification = record_json["classification"]
    tier = classification["tier"]
    if tier == "OFFICIAL":
        rank = (
            ClassificationRank.OFFICIAL_SENSITIVE
            if classification.get("sensitive")
            else ClassificationRank.OFFICIAL
        )
    else:
        rank = ClassificationRank[tier]
    grading = record_json.get("grading") or {}
    retention = record_json.get("retention") or {}
    next_review = retention.get("next_review")
    return RecordAttributes(
        owner_force=str(record_json["owner_force"]),
        kind=str(record_json["kind"]),
        classification=rank,
        handling_code=HandlingCode(grading.get("handling", "P")),
        condition_forces=frozenset(grading.get("condition_forces") or ()),
        subject_categories=frozenset(
            SubjectCategory(c) for c in record_json.get("subject_categories") or ()
        ),
        sensitive_categories=frozenset(
            SensitiveCategory(c) for c in record_json.get("sensitive_categories") or ()
        ),
        retention_review_overdue=next_review is not None
        and date.fromisoformat(str(next_review)) < today,
        retain_decision=retention.get("retain_decision") is not None,
    )
