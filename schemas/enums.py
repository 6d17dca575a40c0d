"""Code lists of the domain (see the UK policing domain reference), fixed as enumerations.

Values are the stable wire codes; never renumber or reuse one. Adding a member is a backwards
compatible change; removing or renaming one needs a new schema version.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class SecurityTier(StrEnum):
    """Government Security Classifications tier (OFFICIAL-SENSITIVE is a marking, see below)."""

    OFFICIAL = "OFFICIAL"
    SECRET = "SECRET"  # noqa: S105 - a classification tier, not a password
    TOP_SECRET = "TOP_SECRET"  # noqa: S105 - a classification tier, not a password


class ClassificationRank(IntEnum):
    """Ordered rank used by policy: the classification a reader's vetting must reach."""

    OFFICIAL = 1
    OFFICIAL_SENSITIVE = 2
    SECRET = 3
    TOP_SECRET = 4


class Descriptor(StrEnum):
    """Descriptors used with OFFICIAL-SENSITIVE (configurable in practice; the common ones)."""

    PERSONAL = "PERSONAL"
    COMMERCIAL = "COMMERCIAL"
    LOCSEN = "LOCSEN"


class SourceEvaluation(StrEnum):
    """3x5x2 source evaluation."""

    RELIABLE = "1"
    UNTESTED = "2"
    NOT_RELIABLE = "3"


class IntelligenceAssessment(StrEnum):
    """3x5x2 intelligence assessment."""

    KNOWN_DIRECTLY = "A"
    KNOWN_INDIRECTLY_CORROBORATED = "B"
    KNOWN_INDIRECTLY = "C"
    NOT_KNOWN = "D"
    SUSPECTED_FALSE = "E"


class HandlingCode(StrEnum):
    """3x5x2 handling code: P lawful sharing permitted, C permitted with conditions."""

    P = "P"
    C = "C"


class SubjectCategory(StrEnum):
    """DPA 2018 s.38(3) data-subject categories."""

    SUSPECT = "SUSPECT"
    CONVICTED = "CONVICTED"
    VICTIM = "VICTIM"
    WITNESS_OTHER = "WITNESS_OTHER"


class SensitiveCategory(StrEnum):
    """DPA 2018 s.35(8) sensitive processing categories."""

    RACE_ETHNIC = "RACE_ETHNIC"
    POLITICAL = "POLITICAL"
    RELIGION_BELIEF = "RELIGION_BELIEF"
    TRADE_UNION = "TRADE_UNION"
    GENETIC = "GENETIC"
    BIOMETRIC_ID = "BIOMETRIC_ID"
    HEALTH = "HEALTH"
    SEX_LIFE_ORIENTATION = "SEX_LIFE_ORIENTATION"


class RetentionGroup(IntEnum):
    """MoPI review groups for nominal records."""

    PUBLIC_PROTECTION = 1
    SERIOUS_OFFENCES = 2
    OTHER_OFFENCES = 3
    UNDETERMINED = 4


class VettingLevel(StrEnum):
    """Vetting levels a principal can hold; `vetting_rank` orders them for clearance checks."""

    NONE = "NONE"
    NPPV1 = "NPPV1"
    NPPV2 = "NPPV2"
    NPPV3 = "NPPV3"
    SC = "SC"
    DV = "DV"


# Which classification rank each vetting level clears (design assumption in the domain reference
# 10.4: OFFICIAL-SENSITIVE needs NPPV2 or above, SECRET needs NPPV3/SC; TOP SECRET needs DV).
VETTING_CLEARS: dict[VettingLevel, ClassificationRank | None] = {
    VettingLevel.NONE: None,
    VettingLevel.NPPV1: None,
    VettingLevel.NPPV2: ClassificationRank.OFFICIAL_SENSITIVE,
    VettingLevel.NPPV3: ClassificationRank.SECRET,
    VettingLevel.SC: ClassificationRank.SECRET,
    VettingLevel.DV: ClassificationRank.TOP_SECRET,
}


def vetting_rank(level: VettingLevel) -> int:
    """The highest classification rank a vetting level clears, 0 when it clears no information."""
    cleared = VETTING_CLEARS[level]
    return 0 if cleared is None else int(cleared)


class Purpose(StrEnum):
    """Law-enforcement purposes an analyst must state for a cross-force query (DPA 2018 s.31)."""

    PREVENTION = "prevention"
    INVESTIGATION = "investigation"
    DETECTION = "detection"
    PROSECUTION = "prosecution"
    SAFEGUARDING = "safeguarding"
    PUBLIC_PROTECTION = "public_protection"


class S62Operation(StrEnum):
    """Processing operations DPA 2018 s.62 requires to be logged."""

    COLLECT = "collect"
    ALTER = "alter"
    CONSULT = "consult"
    DISCLOSE = "disclose"
    COMBINE = "combine"
    ERASE = "erase"


class RecordKind(StrEnum):
    """Record types of schema v1 (POLE entities plus the modern-slavery and county-lines types)."""

    PERSON = "person"
    PHONE = "phone"
    VEHICLE = "vehicle"
    LOCATION = "location"
    ORGANISATION = "organisation"
    INTELLIGENCE_REPORT = "intelligence_report"
    COUNTY_LINE = "county_line"
    MODERN_SLAVERY_CASE = "modern_slavery_case"
    EVENT = "event"


class LinkRole(StrEnum):
    """The role a linked record plays for the linking record (POLE link roles)."""

    SUSPECT = "suspect"
    VICTIM = "victim"
    WITNESS = "witness"
    REPORTING_PERSON = "reporting_person"
    OWNER = "owner"
    DRIVER = "driver"
    PASSENGER = "passenger"
    RESIDENT = "resident"
    VISITOR = "visitor"
    LINE_HOLDER = "line_holder"
    RUNNER = "runner"
    RECRUITER = "recruiter"
    ASSOCIATE = "associate"
    USER_OF = "user_of"
    LOCATED_AT = "located_at"
    MEMBER_OF = "member_of"
    SUBJECT_OF = "subject_of"


class NameType(StrEnum):
    PRIMARY = "primary"
    ALIAS = "alias"
    NICKNAME = "nickname"
    BIRTH = "birth"
    FORMER = "former"


class Gender(StrEnum):
    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


class IdentifierType(StrEnum):
    """Kinds of document or reference number that identify a person."""

    PASSPORT = "passport"
    NATIONAL_ID_CARD = "national_id_card"
    DRIVING_LICENCE = "driving_licence"
    NATIONAL_INSURANCE = "national_insurance"
    RESIDENCE_PERMIT = "residence_permit"
    PNC_ID = "pnc_id"
    CRO = "cro"
    OTHER = "other"


class PremisesType(StrEnum):
    """Premises types that recur in modern slavery and county lines intelligence."""

    CAR_WASH = "car_wash"
    NAIL_BAR = "nail_bar"
    FARM = "farm"
    FACTORY = "factory"
    CONSTRUCTION_SITE = "construction_site"
    BROTHEL = "brothel"
    CANNABIS_GROW = "cannabis_grow"
    CUCKOOED_ADDRESS = "cuckooed_address"
    RESIDENTIAL = "residential"
    TRANSPORT_HUB = "transport_hub"
    OTHER = "other"


class OrganisationType(StrEnum):
    OCG = "ocg"  # organised crime group
    BUSINESS = "business"
    OTHER = "other"


class DrugType(StrEnum):
    HEROIN = "heroin"
    CRACK_COCAINE = "crack_cocaine"
    COCAINE = "cocaine"
    CANNABIS = "cannabis"
    KETAMINE = "ketamine"
    MDMA = "mdma"
    SYNTHETIC_CANNABINOIDS = "synthetic_cannabinoids"
    OTHER = "other"


class LineStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class ClosureType(IntEnum):
    """County Lines Programme closure types."""

    LINE_HOLDER_CHARGED = 1  # Type 1: line holder charged, NCLCC satisfied the number is dead
    NUMBER_DEACTIVATED = 2  # Type 2: number, SIM or handset deactivated


class ExploitationType(StrEnum):
    """NRM exploitation types."""

    LABOUR = "LABOUR"
    SEXUAL = "SEXUAL"
    CRIMINAL = "CRIMINAL"
    DOMESTIC_SERVITUDE = "DOMESTIC_SERVITUDE"
    ORGAN_HARVESTING = "ORGAN_HARVESTING"
    NOT_SPECIFIED_OR_UNKNOWN = "NOT_SPECIFIED_OR_UNKNOWN"


class AgeGroup(StrEnum):
    """Victim age at exploitation, as in NRM statistics."""

    CHILD = "CHILD"
    ADULT = "ADULT"
    UNKNOWN = "UNKNOWN"


class NrmDecision(StrEnum):
    """State of a reasonable or conclusive grounds decision."""

    NOT_REFERRED = "not_referred"
    PENDING = "pending"
    POSITIVE = "positive"
    NEGATIVE = "negative"
    WITHDRAWN = "withdrawn"


class WhereExploited(StrEnum):
    UK = "UK"
    OVERSEAS = "OVERSEAS"
    UK_AND_OVERSEAS = "UK_AND_OVERSEAS"
    UNKNOWN = "UNKNOWN"


class RecruitmentRoute(StrEnum):
    JOB_ADVERT = "job_advert"
    SOCIAL_MEDIA = "social_media"
    FAMILY_OR_FRIEND = "family_or_friend"
    INTIMATE_PARTNER = "intimate_partner"
    DEBT_BONDAGE = "debt_bondage"
    ABDUCTION = "abduction"
    OTHER = "other"
    UNKNOWN = "unknown"


class EventType(StrEnum):
    INCIDENT = "incident"
    ARREST = "arrest"
    NRM_REFERRAL = "nrm_referral"
    SAFEGUARDING_REFERRAL = "safeguarding_referral"
    LINE_CLOSURE = "line_closure"


class ReportPriority(StrEnum):
    """Local priority grade some forces add to intelligence reports."""

    HIGH = "high"  # threat to life or imminent harm
    MEDIUM = "medium"  # time-critical
    LOW = "low"
