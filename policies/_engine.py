"""The policy decision point: `PolicyEngine` (load, reload, decide) and `DecisionCache`.

How a decision is derived from Cedar's answers (first matching row wins; docs/policies.md has
the same table for policy owners):

1. a policy errored during evaluation                                  -> denied (fail closed)
2. a forbid marked @visibility("hidden") applies to search_hits        -> hidden
3. no agreement in force names both the principal's and owner's force  -> hidden
4. a base rule forbids                                                  -> denied
5. a permit that applies carries an obligation the engine does not know -> denied (XACML)
6. mode "records" and read_record permitted: a field group is released when a permit of an
   agreement that also permitted read_record allows it, with the union of those permits'
   obligations ("drop" withholds it); all released, no obligations       -> full, else redacted
7. search_hits permitted (or read_record, in mode "hits")               -> pointer
8. otherwise (deny by default)                                          -> denied

Agreements apply only on the days they are in force, only between their parties and only for
their purposes: the engine selects them per request from the metadata, so a policy text does not
need to (and cannot) widen them.

Decisions are kept across requests (`SharedDecisions`), keyed by everything a decision is made
from: the policy set (its hash), the principal (every attribute, user id included), the record
class, and the context: purpose, case reference, justification flag, mode, requesting force and
the day (agreements are in force by day). The time of day is part of the key only when a policy
can read `context.now`; otherwise Cedar sees nothing else that differs between the two requests,
so a kept decision is the one Cedar would give again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cachetools
import cedarpy

from policies._loading import (
    BASE_LAYER,
    DEFAULT_BASE_DIR,
    DEFAULT_SCHEMA_PATH,
    AgreementMetadata,
    LoadedPolicySet,
    PolicyLoadError,
    load_policy_set,
)
from policies._model import (
    KNOWN_OBLIGATIONS,
    POLICY_FIELD_GROUPS,
    READ_RECORD,
    SEARCH_HITS,
    Decision,
    GroupFate,
    Mode,
    Obligation,
    Outcome,
    PolicyContext,
    Principal,
    RecordAttributes,
    context_record,
    principal_entity_attrs,
    record_entity_attrs,
)
from schemas.fields import FieldGroup

_RECORDS_MODE_ACTIONS = (SEARCH_HITS, READ_RECORD, *(g.value for g in POLICY_FIELD_GROUPS))
_HITS_MODE_ACTIONS = (SEARCH_HITS, READ_RECORD)
#: Decisions kept across requests by default (each is a few hundred bytes to a few KB).
DEFAULT_SHARED_DECISIONS = 4096

# (policy hash, principal, context key, record class)
_SharedKey = tuple[str, Principal, tuple[object, ...], RecordAttributes]


def _context_key(
    loaded: LoadedPolicySet, context: PolicyContext, cedar: dict[str, Any]
) -> tuple[object, ...]:
    """What of the context a decision can depend on (see the module docstring): the agreements
    are chosen by `context.time.date()`, and Cedar's `now` (the instant, in UTC, to the second;
    `cedar` is the context as Cedar gets it) counts only when a policy can read it."""
    return (
        context.purpose,
        cedar["case_reference"],
        context.justification_present,
        context.mode,
        context.requesting_force,
        context.time.date(),
        cedar["now"]["__extn"]["arg"] if loaded.reads_now else None,
    )


class SharedDecisions:
    """A bounded LRU of decisions shared by all requests (thread-safe); `max_entries=0` keeps
    none. A policy reload changes the policy hash, so decisions of the old set are never
    reused under the new one; they age out."""

    def __init__(self, max_entries: int = DEFAULT_SHARED_DECISIONS) -> None:
        self._lock = threading.Lock()
        self._entries: cachetools.LRUCache[_SharedKey, Decision] | None = (
            cachetools.LRUCache(maxsize=max_entries) if max_entries > 0 else None
        )
        self.hits = 0
        self.misses = 0

    def get(self, key: _SharedKey) -> Decision | None:
        if self._entries is None:
            return None
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
            return found

    def put(self, key: _SharedKey, decision: Decision) -> None:
        if self._entries is None:
            return
        with self._lock:
            self._entries[key] = decision

    def __len__(self) -> int:
        if self._entries is None:
            return 0
        with self._lock:
            return len(self._entries)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did; the gateway logs it and writes a policy-change audit entry."""

    ok: bool
    policy_hash: str  # the hash now in force (the old one when the reload failed)
    previous_hash: str
    problems: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.ok and self.policy_hash != self.previous_hash


@dataclass(frozen=True, slots=True)
class AgreementFit:
    """Whether one agreement applies to a request, and why not when it does not (for explain)."""

    agreement_id: str
    applies: bool
    why_not: str | None


class PolicyEngine:
    """Holds the policy set in force and decides requests against it (thread-safe)."""

    def __init__(
        self,
        loaded: LoadedPolicySet,
        *,
        directory: Path | None = None,
        base_dir: Path = DEFAULT_BASE_DIR,
        schema_path: Path = DEFAULT_SCHEMA_PATH,
        shared_decisions: int = DEFAULT_SHARED_DECISIONS,
    ) -> None:
        self._loaded = loaded
        # Decisions kept across requests; `shared_decisions=0` decides every request afresh.
        self.shared = SharedDecisions(shared_decisions)
        self._directory = directory
        self._base_dir = base_dir
        self._schema_path = schema_path
        self._counter_lock = threading.Lock()
        self.cedar_calls = 0  # is_authorized_batch invocations, for tests and metrics
        self.cedar_requests = 0  # individual (principal, action, resource) questions asked

    @classmethod
    def load(
        cls,
        directory: Path,
        *,
        base_dir: Path = DEFAULT_BASE_DIR,
        schema_path: Path = DEFAULT_SCHEMA_PATH,
        shared_decisions: int = DEFAULT_SHARED_DECISIONS,
    ) -> PolicyEngine:
        """Load a policy directory; raises `PolicyLoadError` so a node cannot start without one."""
        loaded = load_policy_set(directory, base_dir=base_dir, schema_path=schema_path)
        return cls(
            loaded,
            directory=directory,
            base_dir=base_dir,
            schema_path=schema_path,
            shared_decisions=shared_decisions,
        )

    def reload(self, directory: Path | None = None) -> ReloadResult:
        """Load the directory again; on any problem keep the policy set in force and say why."""
        previous = self._loaded.policy_hash
        target = directory or self._directory
        if target is None:
            return ReloadResult(False, previous, previous, ("no policy directory to reload",))
        try:
            loaded = load_policy_set(target, base_dir=self._base_dir, schema_path=self._schema_path)
        except PolicyLoadError as exc:
            return ReloadResult(False, previous, previous, exc.problems)
        # One reference swap: a request already holding a DecisionCache keeps the old set.
        self._loaded = loaded
        self._directory = target
        return ReloadResult(True, loaded.policy_hash, previous)

    @property
    def policy_set(self) -> LoadedPolicySet:
        return self._loaded

    @property
    def policy_hash(self) -> str:
        return self._loaded.policy_hash

    def request_cache(self, principal: Principal, context: PolicyContext) -> DecisionCache:
        """A cache for one request: one decision per equivalence class of records."""
        return DecisionCache(self, principal, context)

    def decide(
        self, principal: Principal, record: RecordAttributes, context: PolicyContext
    ) -> Decision:
        """Decide one record class (for many records of one request use `request_cache`)."""
        return self.request_cache(principal, context).decide(record)

    def agreement_fits(
        self, principal: Principal, record: RecordAttributes, context: PolicyContext
    ) -> list[AgreementFit]:
        """For each agreement, whether it applies to this request and if not, why not."""
        return [
            _fit(agreement.metadata, principal, record, context)
            for agreement in self._loaded.agreements
        ]

    def authorize_action(
        self, principal: Principal, record: RecordAttributes, context: PolicyContext, action: str
    ) -> bool:
        """One Cedar question, uncached (the naive baseline in bench/, and ad-hoc checks)."""
        loaded = self._loaded
        applicable, _ = _applicable_agreements(loaded, principal, record, context)
        entities = [_principal_entity(principal), _record_entity("c0", record)]
        request = {
            "principal": {"type": "Principal", "id": principal.user_id},
            "action": {"type": "Action", "id": action},
            "resource": {"type": "Record", "id": "c0"},
            "context": context_record(context),
        }
        self._count(1, 1)
        result = cedarpy.is_authorized(
            request, loaded.cedar_policy_set(applicable), entities, loaded.schema
        )
        return result.allowed and not result.diagnostics.errors

    def _count(self, calls: int, requests: int) -> None:
        with self._counter_lock:
            self.cedar_calls += calls
            self.cedar_requests += requests


class DecisionCache:
    """Decisions for one request (one principal, one context), one per record class.

    It pins the policy set in force when it was created, so every record of one answer is decided
    under the same policy hash even if the engine reloads meanwhile. A class decided by an earlier
    request with the same key (`SharedDecisions`) is taken from the engine's shared decisions.
    """

    def __init__(self, engine: PolicyEngine, principal: Principal, context: PolicyContext) -> None:
        self._engine = engine
        self._loaded = engine.policy_set
        self.principal = principal
        self.context = context
        self._decisions: dict[RecordAttributes, Decision] = {}
        self._principal_entity = _principal_entity(principal)
        cedar_context = context_record(context)
        # Serialised once: cedarpy would otherwise re-encode the context for every question.
        self._context = json.dumps(cedar_context)
        self._actions = _HITS_MODE_ACTIONS if context.mode is Mode.HITS else _RECORDS_MODE_ACTIONS
        self._shared = engine.shared
        self._key = (
            self._loaded.policy_hash,
            principal,
            _context_key(self._loaded, context, cedar_context),
        )

    @property
    def policy_hash(self) -> str:
        return self._loaded.policy_hash

    @property
    def classes_decided(self) -> int:
        return len(self._decisions)

    def decide(self, record: RecordAttributes) -> Decision:
        return self.decide_all([record])[0]

    def decide_all(self, records: Sequence[RecordAttributes]) -> list[Decision]:
        """Decisions for many records; classes not seen before cost one Cedar batch per policy
        subset (records of one owner force share one subset)."""
        missing = list(dict.fromkeys(r for r in records if r not in self._decisions))
        unknown: list[RecordAttributes] = []
        for record in missing:
            kept = self._shared.get((*self._key, record))
            if kept is None:
                unknown.append(record)
            else:
                self._decisions[record] = kept
        if unknown:
            self._decide_classes(unknown)
            for record in unknown:
                self._shared.put((*self._key, record), self._decisions[record])
        return [self._decisions[r] for r in records]

    def _decide_classes(self, classes: list[RecordAttributes]) -> None:
        by_subset: dict[frozenset[str], list[tuple[RecordAttributes, bool]]] = {}
        for record in classes:
            applicable, any_agreement = _applicable_agreements(
                self._loaded, self.principal, record, self.context
            )
            by_subset.setdefault(applicable, []).append((record, any_agreement))
        for subset, members in by_subset.items():
            entities = [self._principal_entity]
            requests: list[dict[str, Any]] = []
            principal_uid = {"type": "Principal", "id": self.principal.user_id}
            for index, (record, _) in enumerate(members):
                uid = f"c{index}"
                entities.append(_record_entity(uid, record))
                requests.extend(
                    {
                        "principal": principal_uid,
                        "action": {"type": "Action", "id": action},
                        "resource": {"type": "Record", "id": uid},
                        "context": self._context,
                    }
                    for action in self._actions
                )
            self._engine._count(1, len(requests))
            results = cedarpy.is_authorized_batch(
                requests,
                self._loaded.cedar_policy_set(subset),
                json.dumps(entities),
                self._loaded.schema,
            )
            width = len(self._actions)
            for index, (record, any_agreement) in enumerate(members):
                answers = dict(
                    zip(self._actions, results[index * width : (index + 1) * width], strict=True)
                )
                self._decisions[record] = _derive(
                    self._loaded, record, self.context, subset, any_agreement, answers
                )


def _principal_entity(principal: Principal) -> dict[str, Any]:
    return {
        "uid": {"type": "Principal", "id": principal.user_id},
        "attrs": principal_entity_attrs(principal),
        "parents": [],
    }


def _record_entity(uid: str, record: RecordAttributes) -> dict[str, Any]:
    return {
        "uid": {"type": "Record", "id": uid},
        "attrs": record_entity_attrs(record),
        "parents": [],
    }


def _fit(
    metadata: AgreementMetadata,
    principal: Principal,
    record: RecordAttributes,
    context: PolicyContext,
) -> AgreementFit:
    agreement_id = metadata.id
    day = context.time.date()
    if not metadata.in_force(day):
        when = "not yet in force" if day < metadata.start else "expired"
        return AgreementFit(agreement_id, False, f"{when} on {day.isoformat()}")
    for role, force in (("principal's", principal.force), ("owner", record.owner_force)):
        if force not in metadata.parties:
            return AgreementFit(agreement_id, False, f"the {role} force {force} is not a party")
    if context.purpose is None or context.purpose not in metadata.purposes:
        stated = "no purpose" if context.purpose is None else f"purpose {context.purpose.value}"
        return AgreementFit(agreement_id, False, f"{stated} is not one of its purposes")
    return AgreementFit(agreement_id, True, None)


def _applicable_agreements(
    loaded: LoadedPolicySet, principal: Principal, record: RecordAttributes, context: PolicyContext
) -> tuple[frozenset[str], bool]:
    """The agreements that apply, and whether any agreement in force names both forces."""
    day = context.time.date()
    applicable: set[str] = set()
    between_parties = False
    for agreement in loaded.agreements:
        meta = agreement.metadata
        if not meta.in_force(day):
            continue
        if principal.force not in meta.parties or record.owner_force not in meta.parties:
            continue
        between_parties = True
        if context.purpose is not None and context.purpose in meta.purposes:
            applicable.add(meta.id)
    return frozenset(applicable), between_parties


def _derive(
    loaded: LoadedPolicySet,
    record: RecordAttributes,
    context: PolicyContext,
    applicable: frozenset[str],
    any_agreement: bool,
    answers: dict[str, cedarpy.AuthzResult],
) -> Decision:
    info = loaded.policies
    order = loaded.order

    def decided(
        outcome: Outcome,
        policy_ids: Sequence[str],
        reason: str,
        *,
        permitted: frozenset[FieldGroup] = frozenset(),
        obligations: dict[FieldGroup, frozenset[Obligation]] | None = None,
        fates: tuple[GroupFate, ...] = (),
        contact: str | None = None,
    ) -> Decision:
        ids = tuple(dict.fromkeys(policy_ids))
        return Decision(
            outcome=outcome,
            permitted_groups=permitted,
            withheld_groups=frozenset(POLICY_FIELD_GROUPS) - permitted,
            obligations=obligations or {},
            policy_ids=ids,
            reason=reason,
            policy_hash=loaded.policy_hash,
            agreement_ids=tuple(sorted(applicable)),
            contact=contact,
            fates=fates,
        )

    def reasons(action: str, effect: str) -> list[str]:
        result = answers.get(action)
        if result is None:
            return []
        wanted = cedarpy.Decision.Allow if effect == "permit" else cedarpy.Decision.Deny
        if result.decision != wanted:
            return []
        # Cedar reports policies in no fixed order; file order makes decisions reproducible and
        # lets a policy author put the rule whose reason should be shown first.
        return sorted(result.diagnostics.reasons, key=order.__getitem__)

    def allowed(action: str) -> bool:
        result = answers.get(action)
        return result is not None and result.allowed

    # 1. An erroring policy might have been a forbid: never guess.
    errors = [e for r in answers.values() for e in r.diagnostics.errors]
    if errors:
        return decided(Outcome.DENIED, [], f"policy evaluation failed (fail closed): {errors[0]}")
    forbids = [pid for action in answers for pid in reasons(action, "forbid")]
    # 2. Hidden forbids: not even a hit.
    hidden = [pid for pid in reasons(SEARCH_HITS, "forbid") if info[pid].hidden]
    if hidden:
        return decided(Outcome.HIDDEN, hidden, info[hidden[0]].reason)
    # 3. No agreement with the owning force at all.
    if not any_agreement:
        return decided(
            Outcome.HIDDEN,
            [],
            f"No information-sharing agreement between the principal's force and force "
            f"{record.owner_force} is in force.",
        )
    # 4. National base rules.
    base = [pid for pid in forbids if info[pid].layer == BASE_LAYER]
    if base:
        return decided(Outcome.DENIED, base, info[base[0]].reason)
    # 5. Obligations nobody can fulfil deny the whole decision.
    permits = {action: reasons(action, "permit") for action in answers}
    for pids in permits.values():
        for pid in pids:
            unknown = [o for o in info[pid].obligations if o not in KNOWN_OBLIGATIONS]
            if unknown:
                return decided(
                    Outcome.DENIED,
                    [pid],
                    f"Policy {pid} requires obligation {unknown[0]!r}, which this gateway cannot "
                    "fulfil, so nothing is released.",
                )
    # 6. Records: read_record permitted.
    if context.mode is Mode.RECORDS and allowed(READ_RECORD):
        return _released(loaded, record, permits, reasons, decided)
    # 7. Pointer.
    pointer_action = SEARCH_HITS if allowed(SEARCH_HITS) else None
    if pointer_action is None and context.mode is Mode.HITS and allowed(READ_RECORD):
        pointer_action = READ_RECORD
    if pointer_action is not None:
        pid = permits[pointer_action][0]
        layer = info[pid].layer
        contact = loaded.agreement(layer).metadata.contact_for(record.owner_force)
        read_forbids = reasons(READ_RECORD, "forbid")
        because = info[read_forbids[0]].reason if read_forbids else info[pid].reason
        return decided(
            Outcome.POINTER, [*permits[pointer_action], *read_forbids], because, contact=contact
        )
    # 8. Deny by default.
    if forbids:
        return decided(Outcome.DENIED, forbids, info[forbids[0]].reason)
    if not applicable:
        stated = "no purpose" if context.purpose is None else f"purpose {context.purpose.value}"
        return decided(
            Outcome.DENIED,
            [],
            f"No agreement in force with force {record.owner_force} covers {stated}.",
        )
    return decided(
        Outcome.DENIED,
        [],
        f"No agreement permits access to {record.kind} records of force {record.owner_force} "
        "in these circumstances.",
    )


def _released(
    loaded: LoadedPolicySet,
    record: RecordAttributes,
    permits: dict[str, list[str]],
    reasons: Any,
    decided: Any,
) -> Decision:
    info = loaded.policies
    record_level = {Obligation(o) for pid in permits[READ_RECORD] for o in info[pid].obligations}
    permitted: set[FieldGroup] = set()
    obligations: dict[FieldGroup, frozenset[Obligation]] = {}
    fates: list[GroupFate] = []
    policy_ids = list(permits[READ_RECORD])
    # An agreement releases fields only of records it lets the principal read, so one agreement's
    # field permits never widen what another agreement's read permission covers.
    read_layers = {info[pid].layer for pid in permits[READ_RECORD]}
    for group in POLICY_FIELD_GROUPS:
        granted = [pid for pid in permits.get(group.value, []) if info[pid].layer in read_layers]
        if not granted:
            forbidders: list[str] = reasons(group.value, "forbid")
            why = (
                info[forbidders[0]].reason
                if forbidders
                else f"No agreement releases {group.value} fields of {record.kind} records."
            )
            policy_ids.extend(forbidders)
            fates.append(GroupFate(group, False, frozenset(), tuple(forbidders), why))
            continue
        # XACML: every applicable permit's obligations apply, so the strictest combination wins.
        group_obligations = record_level | {
            Obligation(o) for pid in granted for o in info[pid].obligations
        }
        policy_ids.extend(granted)
        names = frozenset(o.value for o in group_obligations)
        if Obligation.DROP in group_obligations:
            fates.append(GroupFate(group, False, names, tuple(granted), info[granted[0]].reason))
            continue
        permitted.add(group)
        if group_obligations:
            obligations[group] = frozenset(group_obligations)
        fates.append(GroupFate(group, True, names, tuple(granted), info[granted[0]].reason))
    full = len(permitted) == len(POLICY_FIELD_GROUPS) and not obligations
    reason = info[permits[READ_RECORD][0]].reason
    decision: Decision = decided(
        Outcome.FULL if full else Outcome.REDACTED,
        policy_ids,
        reason,
        permitted=frozenset(permitted),
        obligations=obligations,
        fates=tuple(fates),
    )
    return decision
