"""Standard record models, schema version 1: the envelope, one body per record kind, typed links.

A record is an envelope (provenance, classification, 3x5x2 grading, data-protection categories,
retention) around a body typed by `kind`, plus links to other records. Every leaf field declares
a `FieldMeta` (sensitive, index, field group) in its type; `schemas.field_paths` reads them.

Cross-field rules raise `rule_error(at, message)`, so a failure is reported at the pointer of the
field at fault (e.g. /grading/conditions), not at the object that holds it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.enums import (
    AgeGroup,
    ClassificationRank,
    ClosureType,
    Descriptor,
    DrugType,
    EventType,
    ExploitationType,
    Gender,
    HandlingCode,
    IdentifierType,
    IntelligenceAssessment,
    LineStatus,
    LinkRole,
    NameType,
    NrmDecision,
    OrganisationType,
    PremisesType,
    RecruitmentRoute,
    ReportPriority,
    RetentionGroup,
    SecurityTier,
    SensitiveCategory,
    SourceEvaluation,
    SubjectCategory,
    WhereExploited,
)
from schemas.fields import FieldGroup, FieldMeta, IndexKind
from schemas.values import (
    CountryCode,
    ForceCode,
    Imei,
    LongText,
    PhoneNumber,
    Postcode,
    RecordId,
    Text,
    UtcDatetime,
    Vrm,
)

SCHEMA_VERSION = "1"

# Integers beyond 2**53 - 1 have no exact RFC 8785 form (JSON numbers are IEEE doubles there).
MAX_SAFE_INTEGER = 2**53 - 1

# Field metadata shorthands: one per (group, sensitivity, index) combination in use.
ENVELOPE = FieldMeta(FieldGroup.ENVELOPE)
OPERATIONAL = FieldMeta(FieldGroup.OPERATIONAL)
IDENTITY = FieldMeta(FieldGroup.IDENTITY)
IDENTITY_SECRET = FieldMeta(FieldGroup.IDENTITY, sensitive=True)
NAME = FieldMeta(FieldGroup.IDENTITY, sensitive=True, index=IndexKind.NAME)
DOB = FieldMeta(FieldGroup.IDENTITY, sensitive=True, index=IndexKind.DOB)
PHONE = FieldMeta(FieldGroup.CONTACT, sensitive=True, index=IndexKind.PHONE)
CONTACT = FieldMeta(FieldGroup.CONTACT)
CONTACT_SECRET = FieldMeta(FieldGroup.CONTACT, sensitive=True)
VRM = FieldMeta(FieldGroup.VEHICLE, sensitive=True, index=IndexKind.VRM)
VEHICLE = FieldMeta(FieldGroup.VEHICLE)
ADDRESS = FieldMeta(FieldGroup.LOCATION_PRECISE, sensitive=True)
POSTCODE = FieldMeta(FieldGroup.LOCATION_PRECISE, sensitive=True, index=IndexKind.POSTCODE)
LINE_NAME = FieldMeta(FieldGroup.OPERATIONAL, index=IndexKind.LINE_NAME)
FREE_TEXT = FieldMeta(FieldGroup.FREE_TEXT, sensitive=True, index=IndexKind.PHONE_IN_TEXT)
VICTIM = FieldMeta(FieldGroup.VICTIM_DETAILS, sensitive=True)
CONDITIONS = FieldMeta(FieldGroup.HANDLING_CONDITIONS, sensitive=True)


def rule_error(at: str, message: str) -> PydanticCustomError:
    """A cross-field rule failure reported at `at`, a pointer relative to the validated object."""
    return PydanticCustomError("record_rule", message, {"at": at})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- envelope parts ---------------------------------------------------------------------------


class Classification(_Model):
    """Government Security Classification of the record, with legacy GPMS kept verbatim."""

    tier: Annotated[SecurityTier, ENVELOPE]
    sensitive: Annotated[StrictBool, ENVELOPE] = False  # the OFFICIAL-SENSITIVE marking
    descriptors: Annotated[list[Descriptor], ENVELOPE] = Field(default_factory=list)
    caveats: Annotated[list[Text], ENVELOPE] = Field(default_factory=list)
    legacy_gpms: Annotated[Text | None, ENVELOPE] = None

    @property
    def rank(self) -> ClassificationRank:
        if self.tier is SecurityTier.OFFICIAL:
            return (
                ClassificationRank.OFFICIAL_SENSITIVE
                if self.sensitive
                else ClassificationRank.OFFICIAL
            )
        return ClassificationRank[self.tier.value]

    @model_validator(mode="after")
    def _marking_rules(self) -> Self:
        if self.sensitive and self.tier is not SecurityTier.OFFICIAL:
            raise rule_error("sensitive", "OFFICIAL-SENSITIVE is a marking of the OFFICIAL tier")
        if self.descriptors and not self.sensitive:
            raise rule_error("descriptors", "descriptors need the OFFICIAL-SENSITIVE marking")
        return self


class Grading(_Model):
    """3x5x2 grading; a legacy 5x5x5 grade is kept verbatim, never converted."""

    source_evaluation: Annotated[SourceEvaluation, ENVELOPE]
    assessment: Annotated[IntelligenceAssessment, ENVELOPE]
    handling: Annotated[HandlingCode, ENVELOPE]
    conditions: Annotated[LongText | None, CONDITIONS] = None
    # Forces the originator's conditions allow release to; absent means the conditions say nothing
    # machine-readable about recipients.
    condition_forces: Annotated[list[ForceCode] | None, ENVELOPE] = None
    legacy_5x5x5: Annotated[Text | None, ENVELOPE] = None

    @model_validator(mode="after")
    def _conditions_follow_handling(self) -> Self:
        if self.handling is HandlingCode.C and not self.conditions:
            raise rule_error("conditions", "handling code C requires handling conditions")
        if self.handling is HandlingCode.P:
            if self.conditions is not None:
                raise rule_error("conditions", "handling code P carries no conditions")
            if self.condition_forces is not None:
                raise rule_error("condition_forces", "handling code P carries no conditions")
        return self


class RetainDecision(_Model):
    """A recorded decision to keep a record past its review, with rationale and reviewer."""

    decided_on: Annotated[date, ENVELOPE]
    rationale: Annotated[LongText, FREE_TEXT]
    reviewer: Annotated[Text, ENVELOPE]


class Retention(_Model):
    group: Annotated[RetentionGroup, ENVELOPE]
    next_review: Annotated[date, ENVELOPE]
    clear_period_start: Annotated[date | None, ENVELOPE] = None
    retain_decision: RetainDecision | None = None


class SourceSystem(_Model):
    """Where the owning force holds the record (its system and local reference)."""

    system: Annotated[Text, ENVELOPE]
    local_ref: Annotated[Text, ENVELOPE]


class Originator(_Model):
    id: Annotated[Text, ENVELOPE]
    unit: Annotated[Text | None, ENVELOPE] = None


class RecordRef(_Model):
    """Another record, named by its owning force and record id."""

    force: Annotated[ForceCode, OPERATIONAL]
    record_id: Annotated[RecordId, OPERATIONAL]


class Link(_Model):
    role: Annotated[LinkRole, OPERATIONAL]
    target: RecordRef
    confidence: Annotated[StrictFloat | None, Field(ge=0.0, le=1.0), OPERATIONAL] = None
    source_record: RecordRef | None = None  # the record (e.g. an intelligence report) asserting it


# --- bodies -----------------------------------------------------------------------------------


class PersonName(_Model):
    name_type: Annotated[NameType, IDENTITY] = NameType.PRIMARY
    given_names: Annotated[Text | None, NAME] = None
    family_name: Annotated[Text | None, NAME] = None

    @model_validator(mode="after")
    def _some_name(self) -> Self:
        if self.given_names is None and self.family_name is None:
            raise rule_error("family_name", "a name needs a given or a family name")
        return self


class PersonIdentifier(_Model):
    type: Annotated[IdentifierType, IDENTITY]
    number: Annotated[Text, IDENTITY_SECRET]
    issuing_country: Annotated[CountryCode | None, IDENTITY] = None


class PersonBody(_Model):
    """A nominal: names (one primary, any number of aliases), date of birth, identifiers."""

    names: Annotated[list[PersonName], Field(min_length=1)]
    date_of_birth: Annotated[date | None, DOB] = None
    gender: Annotated[Gender | None, IDENTITY_SECRET] = None
    nationalities: Annotated[list[CountryCode], IDENTITY_SECRET] = Field(default_factory=list)
    identifiers: list[PersonIdentifier] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_primary_name(self) -> Self:
        primaries = sum(1 for name in self.names if name.name_type is NameType.PRIMARY)
        if primaries != 1:
            raise rule_error("names", "exactly one name must be the primary name")
        return self


class PhoneBody(_Model):
    number: Annotated[PhoneNumber, PHONE]
    imei: Annotated[Imei | None, CONTACT_SECRET] = None
    handset: Annotated[Text | None, CONTACT] = None
    network: Annotated[Text | None, CONTACT] = None


class VehicleBody(_Model):
    vrm: Annotated[Vrm, VRM]
    make: Annotated[Text | None, VEHICLE] = None
    model: Annotated[Text | None, VEHICLE] = None
    colour: Annotated[Text | None, VEHICLE] = None


class LocationBody(_Model):
    address_lines: Annotated[list[Text], ADDRESS] = Field(default_factory=list, max_length=6)
    town: Annotated[Text | None, OPERATIONAL] = None
    postcode: Annotated[Postcode | None, POSTCODE] = None
    premises_type: Annotated[PremisesType, OPERATIONAL]

    @model_validator(mode="after")
    def _somewhere(self) -> Self:
        if not self.address_lines and self.postcode is None:
            raise rule_error("postcode", "a location needs address lines or a postcode")
        return self


class OrganisationBody(_Model):
    name: Annotated[Text, IDENTITY_SECRET]
    organisation_type: Annotated[OrganisationType, OPERATIONAL]
    industry: Annotated[PremisesType | None, OPERATIONAL] = None


class IntelligenceReportBody(_Model):
    """A sanitised intelligence report; its 3x5x2 grade is the envelope's grading."""

    text: Annotated[LongText, FREE_TEXT]
    submitted_at: Annotated[UtcDatetime, OPERATIONAL]
    sanitised: Annotated[StrictBool, OPERATIONAL] = True
    # Reference to the unsanitised original, which stays with the owner under tighter access.
    restricted_original_ref: Annotated[Text | None, OPERATIONAL] = None
    priority: Annotated[ReportPriority | None, OPERATIONAL] = None


class DealLine(_Model):
    """A deal-line number and when the line used it (lines change numbers)."""

    number: Annotated[PhoneNumber, PHONE]
    valid_from: Annotated[date, OPERATIONAL]
    valid_to: Annotated[date | None, OPERATIONAL] = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise rule_error("valid_to", "valid_to is before valid_from")
        return self


class LineClosure(_Model):
    type: Annotated[ClosureType, OPERATIONAL]
    closed_on: Annotated[date, OPERATIONAL]


class CountyLineBody(_Model):
    line_names: Annotated[list[Text], Field(min_length=1), LINE_NAME]
    deal_lines: Annotated[list[DealLine], Field(min_length=1)]
    exporting_force: Annotated[ForceCode, OPERATIONAL]
    importing_forces: Annotated[list[ForceCode], OPERATIONAL] = Field(default_factory=list)
    drug_types: Annotated[list[DrugType], OPERATIONAL] = Field(default_factory=list)
    status: Annotated[LineStatus, OPERATIONAL]
    closure: LineClosure | None = None

    @model_validator(mode="after")
    def _closure_matches_status(self) -> Self:
        if self.status is LineStatus.CLOSED and self.closure is None:
            raise rule_error("closure", "a closed line needs its closure type and date")
        if self.status is LineStatus.ACTIVE and self.closure is not None:
            raise rule_error("closure", "an active line has no closure")
        return self


class ModernSlaveryCaseBody(_Model):
    exploitation_types: Annotated[list[ExploitationType], Field(min_length=1), VICTIM]
    victim_age_group: Annotated[AgeGroup, VICTIM]
    nrm_reference: Annotated[Text | None, VICTIM] = None
    reasonable_grounds: Annotated[NrmDecision, VICTIM] = NrmDecision.NOT_REFERRED
    conclusive_grounds: Annotated[NrmDecision, VICTIM] = NrmDecision.NOT_REFERRED
    duty_to_notify: Annotated[StrictBool, VICTIM] = False
    where_exploited: Annotated[WhereExploited | None, VICTIM] = None
    recruitment_route: Annotated[RecruitmentRoute | None, VICTIM] = None
    industry: Annotated[PremisesType | None, OPERATIONAL] = None
    county_lines: Annotated[StrictBool, OPERATIONAL] = False

    @model_validator(mode="after")
    def _grounds_in_order(self) -> Self:
        decided = {NrmDecision.POSITIVE, NrmDecision.NEGATIVE}
        if (
            self.conclusive_grounds in decided
            and self.reasonable_grounds is not NrmDecision.POSITIVE
        ):
            raise rule_error(
                "conclusive_grounds",
                "a conclusive grounds decision follows a positive reasonable grounds decision",
            )
        return self


class EventBody(_Model):
    event_type: Annotated[EventType, OPERATIONAL]
    occurred_at: Annotated[UtcDatetime, OPERATIONAL]
    location_ref: RecordRef | None = None
    summary: Annotated[LongText | None, FREE_TEXT] = None


# --- records ----------------------------------------------------------------------------------


class RecordBase(_Model):
    """The envelope every record kind shares; subclasses fix `kind` and the body type."""

    id: Annotated[RecordId, ENVELOPE]
    kind: Annotated[str, ENVELOPE]
    schema_version: Annotated[Literal["1"], ENVELOPE]
    owner_force: Annotated[ForceCode, ENVELOPE]
    version: Annotated[StrictInt, Field(ge=1, le=MAX_SAFE_INTEGER), ENVELOPE]
    created_at: Annotated[UtcDatetime, ENVELOPE]
    updated_at: Annotated[UtcDatetime, ENVELOPE]
    classification: Classification
    grading: Grading
    subject_categories: Annotated[list[SubjectCategory], ENVELOPE] = Field(default_factory=list)
    sensitive_categories: Annotated[list[SensitiveCategory], ENVELOPE] = Field(default_factory=list)
    retention: Retention
    source: SourceSystem
    originator: Originator | None = None
    body: BaseModel
    links: list[Link] = Field(default_factory=list)

    @model_validator(mode="after")
    def _times_in_order(self) -> Self:
        if self.updated_at < self.created_at:
            raise rule_error("updated_at", "updated_at is before created_at")
        return self

    def to_json_data(self) -> dict[str, Any]:
        """The record as plain JSON data (the form storage, canonical JSON and NDJSON use)."""
        return self.model_dump(mode="json")


class PersonRecord(RecordBase):
    kind: Annotated[Literal["person"], ENVELOPE]
    body: PersonBody


class PhoneRecord(RecordBase):
    kind: Annotated[Literal["phone"], ENVELOPE]
    body: PhoneBody


class VehicleRecord(RecordBase):
    kind: Annotated[Literal["vehicle"], ENVELOPE]
    body: VehicleBody


class LocationRecord(RecordBase):
    kind: Annotated[Literal["location"], ENVELOPE]
    body: LocationBody


class OrganisationRecord(RecordBase):
    kind: Annotated[Literal["organisation"], ENVELOPE]
    body: OrganisationBody


class IntelligenceReportRecord(RecordBase):
    kind: Annotated[Literal["intelligence_report"], ENVELOPE]
    body: IntelligenceReportBody


class CountyLineRecord(RecordBase):
    kind: Annotated[Literal["county_line"], ENVELOPE]
    body: CountyLineBody


class ModernSlaveryCaseRecord(RecordBase):
    kind: Annotated[Literal["modern_slavery_case"], ENVELOPE]
    body: ModernSlaveryCaseBody


class EventRecord(RecordBase):
    kind: Annotated[Literal["event"], ENVELOPE]
    body: EventBody


Record = Annotated[
    PersonRecord
    | PhoneRecord
    | VehicleRecord
    | LocationRecord
    | OrganisationRecord
    | IntelligenceReportRecord
    | CountyLineRecord
    | ModernSlaveryCaseRecord
    | EventRecord,
    Field(discriminator="kind"),
]

# (kind, schema version) -> model. A future v2 of a kind is registered beside its v1 model.
_MODELS: dict[tuple[str, str], type[RecordBase]] = {
    ("person", "1"): PersonRecord,
    ("phone", "1"): PhoneRecord,
    ("vehicle", "1"): VehicleRecord,
    ("location", "1"): LocationRecord,
    ("organisation", "1"): OrganisationRecord,
    ("intelligence_report", "1"): IntelligenceReportRecord,
    ("county_line", "1"): CountyLineRecord,
    ("modern_slavery_case", "1"): ModernSlaveryCaseRecord,
    ("event", "1"): EventRecord,
}

KINDS: tuple[str, ...] = tuple(kind for kind, version in _MODELS if version == SCHEMA_VERSION)


class UnknownRecordKindError(KeyError):
    """No model is registered for this (kind, schema version)."""


def record_model(kind: str, version: str = SCHEMA_VERSION) -> type[RecordBase]:
    """The model class for a record kind at a schema version."""
    try:
        return _MODELS[(kind, version)]
    except KeyError:
        raise UnknownRecordKindError(f"{kind!r} version {version!r}") from None
