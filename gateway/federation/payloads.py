"""Shapes exchanged between nodes and shown to analysts for federated search and disclosure."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from schemas.enums import Purpose

SearchMode = Literal["hits", "records"]
PartnerStatus = Literal["ok", "denied", "timeout", "unreachable", "bad_signature", "error"]


class PrincipalClaims(BaseModel):
    """The analyst a node asks for; the asking node vouches for it with its signature."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=128)
    force: str = Field(min_length=1, max_length=8)
    roles: list[str] = Field(default_factory=list, max_length=32)
    vetting: str = Field(max_length=16)
    units: list[str] = Field(default_factory=list, max_length=32)


class QueryContext(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: Purpose
    justification: str = Field(min_length=1, max_length=2000)
    case_ref: str = Field(min_length=1, max_length=64)
    mode: SearchMode = "hits"


class SearchTermsIn(BaseModel):
    """Query terms; at least one identifier is required (checked by the search service)."""

    model_config = ConfigDict(extra="forbid")

    phone: str | None = Field(default=None, max_length=64)
    vrm: str | None = Field(default=None, max_length=16)
    name: str | None = Field(default=None, max_length=200)
    dob: str | None = Field(default=None, max_length=10)
    postcode: str | None = Field(default=None, max_length=10)
    line_name: str | None = Field(default=None, max_length=100)
    kinds: list[str] = Field(default_factory=list, max_length=16)

    def to_terms_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude_defaults=True)


class PartnerSearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=64)
    principal: PrincipalClaims
    context: QueryContext
    terms: SearchTermsIn
    limit: int = Field(default=50, ge=1, le=200)


class PartnerDiscloseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=64)
    principal: PrincipalClaims
    context: QueryContext
    record_id: str = Field(min_length=1, max_length=64)


class ReceiptOut(BaseModel):
    """The answering node's proof that it logged the disclosure before answering."""

    force: str
    origin: str
    index: int = Field(ge=0)
    leaf_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    checkpoint: str = Field(description="C2SP signed checkpoint that includes the entry")


class PartnerAnswer(BaseModel):
    """Body of a partner's signed answer to /federation/v1/search or /disclose."""

    status: Literal["ok", "denied"]
    force: str
    mode: SearchMode
    hit_count: int
    hits: list[dict[str, Any]]
    decision: str
    denied_reason: str | None = None
    receipt: ReceiptOut
    # Defaults to False so that an answer from a node predating the flag still parses.
    truncated: bool = Field(
        default=False,
        description=(
            "More records held the searched identifiers than one search examines, so matching "
            "records may be missing from `hits`"
        ),
    )


class CosignRequest(BaseModel):
    """A log owner asks a witness to cosign: its new checkpoint plus a consistency proof from the
    size the owner believes the witness last cosigned (0 for the first time)."""

    model_config = ConfigDict(extra="forbid")

    old_size: int = Field(ge=0)
    proof: list[str] = Field(default_factory=list, max_length=128)
    checkpoint: str = Field(max_length=4096)


class CosignAnswer(BaseModel):
    cosigned: str
    witness: str


# --- analysts' API ------------------------------------------------------------------------------


def _not_blank(value: str) -> str:
    """Refuse text that is only whitespace: policy would read it as no text at all."""
    if not value.strip():
        raise PydanticCustomError("blank_string", "Must not be blank (whitespace only)")
    return value


# What an analyst states with every search and disclosure. Kept as given (not stripped): it is
# sealed into the audit entries word for word.
Justification = Annotated[
    str,
    Field(min_length=1, max_length=2000, description="Why the analyst needs it; not blank"),
    AfterValidator(_not_blank),
]
CaseRef = Annotated[
    str,
    Field(min_length=1, max_length=64, description="Case or operation reference; not blank"),
    AfterValidator(_not_blank),
]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: Purpose
    justification: Justification
    case_ref: CaseRef
    mode: SearchMode = "hits"
    forces: list[str] | None = Field(
        default=None, description="Force codes to ask; default: every active member"
    )
    phone: str | None = Field(default=None, max_length=64)
    vrm: str | None = Field(default=None, max_length=16)
    name: str | None = Field(default=None, max_length=200)
    dob: str | None = Field(default=None, max_length=10)
    postcode: str | None = Field(default=None, max_length=10)
    line_name: str | None = Field(default=None, max_length=100)
    kinds: list[str] = Field(default_factory=list, max_length=16)
    limit: int = Field(default=50, ge=1, le=200)

    def terms(self) -> SearchTermsIn:
        return SearchTermsIn(
            phone=self.phone,
            vrm=self.vrm,
            name=self.name,
            dob=self.dob,
            postcode=self.postcode,
            line_name=self.line_name,
            kinds=list(self.kinds),
        )

    def context(self) -> QueryContext:
        return QueryContext(
            purpose=self.purpose,
            justification=self.justification,
            case_ref=self.case_ref,
            mode=self.mode,
        )


class ForceResult(BaseModel):
    force: str
    status: PartnerStatus
    detail: str | None = None
    hit_count: int = 0
    hits: list[dict[str, Any]] = Field(default_factory=list)
    decision: str | None = None
    receipt_index: int | None = None
    elapsed_ms: float | None = None
    truncated: bool = Field(
        default=False,
        description=(
            "True when more of this force's records held the identifiers searched for than one "
            "search examines (1,000 in this gateway), so matching records this force holds may "
            "be missing from these hits. Narrow the search and ask again: add another "
            "identifier, such as a date of birth with a name, a postcode or a phone number. "
            "Always false when the force gave no answer (timeout, unreachable, bad_signature, "
            "error): nothing is known then."
        ),
    )


class PersonGroup(BaseModel):
    """The same person, phone or line found in several forces' records, each kept separate."""

    key: str = Field(description="kind:normalised value, e.g. phone:+447700900123")
    forces: list[str]
    records: list[dict[str, Any]] = Field(description="[{force, record_id}]")


class SearchResponse(BaseModel):
    request_id: str
    mode: SearchMode
    results: list[ForceResult]
    groups: list[PersonGroup] = Field(default_factory=list)


class DiscloseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: Purpose
    justification: Justification
    case_ref: CaseRef


class DiscloseResponse(BaseModel):
    request_id: str
    force: str
    status: PartnerStatus
    detail: str | None = None
    outcome: str | None = None
    record: dict[str, Any] | None = None
    withheld: list[str] = Field(
        default_factory=list, description="JSON pointers of the fields policy withheld"
    )
    contact: str | None = None
    receipt_index: int | None = None
