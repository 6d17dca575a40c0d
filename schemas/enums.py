"""Code lists of the domain (see the UK policing domain reference), fixed as enumerations.

Values are the stable wire codes; never renumber or reuse one. Adding a member is a backwards
compatible change; removing or renaming one needs a new schema version.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class SecurityTier(StrEnum):
    """Government Security Classifications tier (OFFICIAL-SENSITIVE is a marking, see below)."""

    OFFICIAL = "OFFICIAL"
    SECRET = "SECRET"
    TOP_SECRET = "TOP_SECRET"


class ClassificationRank(IntEnum):
    """Ordered rank used by policy: the classification a reader's vetting must reach."""

    OFFICIAL = 1
    OFFICIAL_SENSITIVE = 2
    SECRET = 3
    TOP_SECRET = 4


class Descriptor(StrEnum):
    """Descriptors used with OFFICIAL-SENSITIVE (configurable in practice; these are the common ones)."""

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
