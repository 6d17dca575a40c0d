"""Local search and disclosure: the single enforcement point for every read of records by people
outside the owning force's own systems (own analysts, partner forces).

1. Query terms are normalised and turned into this force's blind-index tags; candidate records
   are found by tag alone, at most `MAX_CANDIDATES` of them. When more records hold the tags,
   the answer says so (`LocalAnswer.truncated`): a search cut short must never look complete.
2. Each candidate is decrypted and re-checked against the normalised query values, so a
   truncated-tag collision never produces a false hit.
3. Policy decides once per equivalence class of records (owner, kind, classification, handling,
   categories, retention), and `policies.apply_decision` filters each record before anything is
   serialised: hidden and denied records are dropped, pointers carry only whom to contact.

No audit entry is written here: the caller writes consult/disclose from the `LocalAnswer`
before it sends anything (fail closed).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Protocol

import structlog
from sqlalchemy.engine import Connection

from audit.entry import RecordRef
from gateway.keys.blind_index import KEYED_AS, normalised_terms
from gateway.keys.local import LocalKeyFileProvider
from gateway.keys.provider import WrappedKey
from gateway.node import Node
from gateway.ops.metrics import metrics_of
from gateway.records import repository
from gateway.records.protection import reveal_record
from policies import (
    WITHHELD_KEY,
    Decision,
    Mode,
    Outcome,
    PolicyContext,
    Principal,
    apply_decision,
    record_attributes_from_json,
)
from schemas import field_groups, walk_fields
from schemas.enums import VettingLevel
from schemas.fields import FieldGroup, IndexKind

# Query fields and the blind index each one searches.
_FIELDS: dict[str, IndexKind] = {
    "phone": IndexKind.PHONE,
    "vrm": IndexKind.VRM,
    "name": IndexKind.NAME,
    "dob": IndexKind.DOB,
    "postcode": IndexKind.POSTCODE,
    "line_name": IndexKind.LINE_NAME,
}
# Term kinds that, on their own, identify a match for a field.
_EXACT_KINDS: dict[str, frozenset[str]] = {
    "phone": frozenset({"phone"}),
    "vrm": frozenset({"vrm"}),
    "dob": frozenset({"dob"}),
    "postcode": frozenset({"postcode"}),
    "line_name": frozenset({"line_name"}),
    "name": frozenset({"name_full", "name_full_phonetic"}),
}
# At most this many candidate records (lowest record ids first) are decrypted and re-checked
# per search; when more records hold the searched tags, the answer is marked truncated.
MAX_CANDIDATES = 1000

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SearchTerms:
    phone: str | None = None
    vrm: str | None = None
    name: str | None = None
    dob: str | None = None
    postcode: str | None = None
    line_name: str | None = None
    kinds: tuple[str, ...] = ()

    def given(self) -> dict[str, str]:
        return {
            name: value
            for name in _FIELDS
            if (value := getattr(self, name)) is not None and str(value).strip()
        }

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.given())
        if self.kinds:
            data["kinds"] = list(self.kinds)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchTerms:
        values = {k: (str(v) if v is not None else None) for k, v in data.items() if k in _FIELDS}
        kinds = tuple(str(k) for k in data.get("kinds") or ())
        return cls(**values, kinds=kinds)


@dataclass
class LocalHit:
    record_id: str
    kind: str
    outcome: str
    record: dict[str, Any] | None = None
    contact: str | None = None
    matched: list[str] = field(default_factory=list)
    # JSON pointers of this record's fields that policy withheld (what a redaction removed).
    withheld: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LocalHit:
        return cls(
            record_id=str(data["record_id"]),
            kind=str(data["kind"]),
            outcome=str(data["outcome"]),
            record=data.get("record"),
            contact=data.get("contact"),
            matched=[str(m) for m in data.get("matched") or []],
            withheld=[str(w) for w in data.get("withheld") or []],
        )


@dataclass
class LocalAnswer:
    mode: str
    hits: list[LocalHit] = field(default_factory=list)
    policy_ids: tuple[str, ...] = ()
    policy_hash: str = ""
    decision: str = ""
    disclosed: list[RecordRef] = field(default_factory=list)
    matched: list[RecordRef] = field(default_factory=list)
    fields_withheld: list[str] = field(default_factory=list)
    denied_reason: str | None = None
    # More records held the searched tags than MAX_CANDIDATES: some may be missing from `hits`.
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "hits": [h.to_json() for h in self.hits],
            "policy_ids": list(self.policy_ids),
            "policy_hash": self.policy_hash,
            "decision": self.decision,
            "disclosed": [r.to_json() for r in self.disclosed],
            "matched": [r.to_json() for r in self.matched],
            "fields_withheld": list(self.fields_withheld),
            "denied_reason": self.denied_reason,
            "truncated": self.truncated,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LocalAnswer:
        return cls(
            mode=str(data["mode"]),
            hits=[LocalHit.from_json(h) for h in data.get("hits") or []],
            policy_ids=tuple(data.get("policy_ids") or ()),
            policy_hash=str(data.get("policy_hash") or ""),
            decision=str(data.get("decision") or ""),
            disclosed=[RecordRef.from_json(r) for r in data.get("disclosed") or []],
            matched=[RecordRef.from_json(r) for r in data.get("matched") or []],
            fields_withheld=[str(f) for f in data.get("fields_withheld") or []],
            denied_reason=data.get("denied_reason"),
            truncated=bool(data.get("truncated", False)),
        )


class AnalystLike(Protocol):
    """What policy needs to know of an analyst: ours (AnalystPrincipal) or a partner's, as its
    node vouched for it in a signed request."""

    @property
    def user_id(self) -> str: ...
    @property
    def force(self) -> str: ...
    @property
    def roles(self) -> Sequence[str]: ...
    @property
    def vetting(self) -> str: ...
    @property
    def units(self) -> Sequence[str]: ...


def to_policy_principal(analyst: AnalystLike, *, suspended: bool) -> Principal:
    try:
        vetting = VettingLevel(analyst.vetting)
    except ValueError:
        vetting = VettingLevel.NONE
    return Principal(
        user_id=analyst.user_id,
        force=analyst.force,
        roles=frozenset(analyst.roles),
        vetting=vetting,
        units=frozenset(analyst.units),
        is_system_client=False,
        force_suspended=suspended,
    )


def _query_values(terms: SearchTerms) -> dict[str, set[tuple[str, str]]]:
    """Normalised (term kind, value) pairs per given query field (empty when it does not
    normalise)."""
    return {name: set(normalised_terms(_FIELDS[name], raw)) for name, raw in terms.given().items()}


# Why a query field gives nothing to look up (it does not normalise, or only to a form that is
# not searched, such as a postcode district alone).
_UNUSABLE: dict[str, str] = {
    "phone": "not a valid phone number",
    "vrm": "not a vehicle registration mark: no letters or digits",
    "name": "no letters or digits to search by",
    "dob": "not a date: use YYYY-MM-DD or DD/MM/YYYY",
    "postcode": "not a full UK postcode (e.g. L1 8JQ); a postcode district alone is not searched",
    "line_name": "no letters or digits to search by",
}


class UnusableTerms(ValueError):
    """Query fields that give nothing to look up. Refused rather than dropped: a search for a
    name AND an unreadable phone number must not quietly become a search for the name alone."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}: {why}" for name, why in problems.items()))


def unusable_terms(terms: SearchTerms) -> dict[str, str]:
    """The given query fields that yield no searchable term, each with the reason."""
    return _unusable(_query_values(terms))


def _unusable(query: dict[str, set[tuple[str, str]]]) -> dict[str, str]:
    problems: dict[str, str] = {}
    for name, pairs in query.items():
        looked_up = _EXACT_KINDS[name] | ({"name_part_phonetic"} if name == "name" else set())
        if not any(kind in looked_up for kind, _ in pairs):
            problems[name] = _UNUSABLE[name]
    return problems


def _record_values(record: dict[str, Any], kinds: frozenset[IndexKind]) -> set[tuple[str, str]]:
    """The normalised values a record holds in fields indexed as one of `kinds` (the queried
    ones: the others cannot decide a match, and normalising a phone or a name is not free)."""
    pairs: set[tuple[str, str]] = set()
    for fv in walk_fields(record):
        index = fv.spec.index
        if index is not None and KEYED_AS.get(index, index) in kinds and isinstance(fv.value, str):
            pairs.update(normalised_terms(index, fv.value))
    return pairs


def _field_matches(name: str, query: set[tuple[str, str]], held: set[tuple[str, str]]) -> bool:
    if name == "name":
        if any(pair in held for pair in query if pair[0] in _EXACT_KINDS["name"]):
            return True
        # Every part of the queried name sounds like a part of one of the record's names.
        parts = {pair for pair in query if pair[0] == "name_part_phonetic"}
        return bool(parts) and parts <= held
    return any(pair in held for pair in query if pair[0] in _EXACT_KINDS[name])


def _matches(
    query: dict[str, set[tuple[str, str]]], held: set[tuple[str, str]]
) -> list[str] | None:
    matched = [name for name, pairs in query.items() if _field_matches(name, pairs, held)]
    return matched if len(matched) == len(query) else None


def _summary(counts: Counter[str]) -> str:
    order = [o.value for o in Outcome]
    return ",".join(f"{o}:{counts[o]}" for o in order if counts[o])


@dataclass(frozen=True)
class _FieldTags:
    """The blind tags that find candidates for one queried field: a record holding any tag of
    `any_of`, or all of `all_of` (every part of a name sounding like one of its name parts)."""

    name: str
    any_of: list[tuple[str, bytes]]
    all_of: list[tuple[str, bytes]]


def _wanted_tags(node: Node, query: dict[str, set[tuple[str, str]]]) -> list[_FieldTags]:
    """Per queried field, the blind tags that identify a match (this force's active keys)."""
    keyring = node.keys.index
    version = node.keys.index_version
    per_field: list[_FieldTags] = []
    for name, pairs in query.items():
        index_kind = _FIELDS[name]

        def tag(kind: str, value: str, index_kind: IndexKind = index_kind) -> tuple[str, bytes]:
            return kind, keyring.tag_bytes(index_kind, kind, value, version)

        any_of = [tag(k, v) for k, v in sorted(pairs) if k in _EXACT_KINDS[name]]
        all_of = (
            [tag(k, v) for k, v in sorted(pairs) if k == "name_part_phonetic"]
            if name == "name"
            else []
        )
        per_field.append(_FieldTags(name, any_of, all_of))
    # Narrow fields first: a name's phonetic parts can be held by thousands of records, so the
    # name is looked up last, among the records the other fields found.
    per_field.sort(key=lambda f: f.name == "name")
    return per_field


# Records found by the fields read so far are passed to the next field's read while they are at
# most this many (beyond that an IN list costs more than it saves).
NARROW_WITHIN_MAX = 1000


def _read_candidates(
    conn: Connection, per_field: list[_FieldTags], kinds: Sequence[str] = ()
) -> tuple[list[repository.StoredRecord], bool]:
    """The stored records holding a blind tag for every queried field (tags only, nothing
    decrypted), and whether the cap cut them: one synchronous unit of database work
    (`Database.run_sync`). Record kinds asked for (`kinds`) are applied before the cap when the
    cap would cut, so that naming a kind is a way to narrow a broad search."""
    ids: set[str] | None = None
    for wanted in per_field:
        within = ids if ids is not None and len(ids) <= NARROW_WITHIN_MAX else None
        found = repository.candidate_ids_sync(conn, wanted.any_of, wanted.all_of, within=within)
        ids = found if ids is None else ids & found
        if not ids:
            return [], False
    if ids is None:
        return [], False
    if kinds and len(ids) > MAX_CANDIDATES:
        ids = repository.ids_of_kinds_sync(conn, ids, kinds)
    kept = sorted(ids)[:MAX_CANDIDATES]
    return repository.fetch_records_sync(conn, kept), len(kept) < len(ids)


# Up to this many records are decrypted on the event loop when the KEK is a local key file: for
# a handful of records the thread hop (and the loop wake-up after it) costs more than the work.
INLINE_REVEAL_MAX = 4


async def _reveal(
    node: Node, stored: list[repository.StoredRecord]
) -> list[tuple[repository.StoredRecord, dict[str, Any]]]:
    def reveal_all() -> list[tuple[repository.StoredRecord, dict[str, Any]]]:
        out = []
        for row in stored:
            key = node.keys.kek.unwrap(WrappedKey(kek_version=row.kek_version, blob=row.wrapped))
            out.append(
                (
                    row,
                    reveal_record(
                        row.document, data_key=key, key_id=row.data_key_id, force=node.keys.force
                    ),
                )
            )
        return out

    if not stored:
        return []
    if len(stored) <= INLINE_REVEAL_MAX and isinstance(node.keys.kek, LocalKeyFileProvider):
        # (An HSM's unwrap is a round trip to the token: that stays off the event loop.)
        return reveal_all()
    return await asyncio.to_thread(reveal_all)


async def _load(node: Node, ids: list[str]) -> list[tuple[repository.StoredRecord, dict[str, Any]]]:
    if not ids:
        return []
    stored = await node.db.run_sync(lambda conn: repository.fetch_records_sync(conn, ids))
    return await _reveal(node, stored)


def _enforce(
    node: Node,
    rows: list[tuple[repository.StoredRecord, dict[str, Any], list[str]]],
    principal: Principal,
    context: PolicyContext,
    limit: int,
) -> LocalAnswer:
    cache = node.policies.request_cache(principal, context)
    today = context.time.date() if context.time else date.today()
    decisions: list[Decision] = cache.decide_all(
        [record_attributes_from_json(row.document, today=today) for row, _, _ in rows]
    )
    answer = LocalAnswer(mode=context.mode.value, policy_hash=cache.policy_hash)
    counts: Counter[str] = Counter()
    policy_ids: dict[str, None] = {}
    withheld: dict[str, None] = {}
    denied_reasons: list[str] = []
    for (row, record, matched), decision in zip(rows, decisions, strict=True):
        counts[decision.outcome.value] += 1
        policy_ids.update(dict.fromkeys(decision.policy_ids))
        if decision.outcome is Outcome.DENIED:
            denied_reasons.append(decision.reason)
            continue
        if decision.outcome is Outcome.HIDDEN:
            continue
        if len(answer.hits) >= limit:
            continue
        ref = RecordRef(force=node.keys.force, record_id=row.record_id, version=row.version)
        answer.matched.append(ref)
        hit = LocalHit(
            record_id=row.record_id,
            kind=row.kind,
            outcome=decision.outcome.value,
            contact=decision.contact,
            matched=matched,
        )
        if context.mode is Mode.RECORDS and decision.outcome in (Outcome.FULL, Outcome.REDACTED):
            shown = apply_decision(record, decision, field_groups(row.kind))
            if shown is not None:
                hit.withheld = list(shown.pop(WITHHELD_KEY, []))
                for pointer in hit.withheld:
                    withheld[f"{row.record_id}{pointer}"] = None
                hit.record = shown
                answer.disclosed.append(ref)
        answer.hits.append(hit)
    metrics_of(node).policy_decided(counts)
    answer.decision = _summary(counts)
    answer.policy_ids = tuple(policy_ids)
    answer.fields_withheld = list(withheld)
    if denied_reasons and not answer.hits:
        answer.denied_reason = denied_reasons[0]
    return answer


async def search_local(
    *,
    node: Node,
    terms: SearchTerms,
    principal: Principal,
    context: PolicyContext,
    limit: int = 50,
) -> LocalAnswer:
    """Search this force's records under policy. Raises UnusableTerms (a ValueError) when a
    given field gives nothing to look up, ValueError when no field is given."""
    # Normalised once: checked for fields that give nothing to look up, then searched.
    query = _query_values(terms)
    problems = _unusable(query)
    if problems:
        raise UnusableTerms(problems)
    if not query:
        raise ValueError("no usable search term (phone, vrm, name, dob, postcode, line_name)")
    per_field = _wanted_tags(node, query)
    stored, truncated = await node.db.run_sync(
        lambda conn: _read_candidates(conn, per_field, terms.kinds)
    )
    if truncated:
        _note_truncated(node, context)
    loaded = await _reveal(node, stored)
    queried = frozenset(_FIELDS[name] for name in query)
    rows: list[tuple[repository.StoredRecord, dict[str, Any], list[str]]] = []
    for row, record in loaded:
        if terms.kinds and row.kind not in terms.kinds:
            continue
        matched = _matches(query, _record_values(record, queried))
        if matched is not None:
            rows.append((row, record, matched))
    rows.sort(key=lambda item: item[0].record_id)
    answer = _enforce(node, rows, principal, context, limit)
    answer.truncated = truncated
    return answer


def _note_truncated(node: Node, context: PolicyContext) -> None:
    # Only the cap and who asked: never a term, a count of what was held, or a record id.
    log.info(
        "search.candidates_truncated",
        kept=MAX_CANDIDATES,
        requesting_force=context.requesting_force,
    )
    metrics_of(node).search_truncated()


OWNER_SYNC_POLICY = "owner.sync_read"


def owner_system_decision(policy_hash: str) -> Decision:
    """The decision for the owning force's own system reading back what it wrote (sync API).

    Not a disclosure: the record never leaves its owner. It still goes through this enforcement
    point so that every read of record content has one path, and is audited as a consultation.
    """
    return Decision(
        outcome=Outcome.FULL,
        permitted_groups=frozenset(FieldGroup),
        withheld_groups=frozenset(),
        obligations={},
        policy_ids=(OWNER_SYNC_POLICY,),
        reason="The owning force's own records management system reads back its record.",
        policy_hash=policy_hash,
    )


async def read_for_owner_system(*, node: Node, record_id: str) -> tuple[int, dict[str, Any]] | None:
    """(version, record) for the owning force's system, or None when the node holds no such
    record."""
    loaded = await _load(node, [record_id])
    if not loaded:
        return None
    row, record = loaded[0]
    decision = owner_system_decision(node.policies.policy_hash)
    shown = apply_decision(record, decision, field_groups(row.kind))
    if shown is None:  # pragma: no cover - a full decision always shows the record
        return None
    shown.pop(WITHHELD_KEY, None)
    return row.version, shown


async def disclose_local(
    *, node: Node, record_id: str, principal: Principal, context: PolicyContext
) -> LocalAnswer:
    """One record as policy allows (step 2 after a hit). An absent record is an empty answer."""
    loaded = await _load(node, [record_id])
    rows: list[tuple[repository.StoredRecord, dict[str, Any], list[str]]] = [
        (row, record, []) for row, record in loaded
    ]
    records_context = PolicyContext(
        purpose=context.purpose,
        case_reference=context.case_reference,
        time=context.time,
        mode=Mode.RECORDS,
        justification_present=context.justification_present,
        requesting_force=context.requesting_force,
    )
    return _enforce(node, rows, principal, records_context, 1)
