"""Federated search and two-step disclosure, on both sides, with both-sides audit.

Answering node (`answer_search`, `answer_disclose`): search under its own policy, append the
disclosure entry, and only then build the answer with a receipt (entry index, leaf hash and a
signed checkpoint that includes it). If the entry cannot be made durable, it answers nothing.

Requesting node (`federated_search`, `federated_disclose`): append the outbound query (consult)
before anything is sent, fan out to the partners concurrently with a deadline each, verify every
answer and its receipt, then append a completion entry holding the receipts before answering the
analyst. Search terms and justification are sealed in the entries, never in clear fields.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from audit.checkpoint import Checkpoint
from audit.entry import Actor, EntryKind, RecordRef, SecurityEvent, canonical_json
from audit.errors import CheckpointError
from audit.log import Receipt
from gateway.federation.client import PartnerClient, PartnerFailure
from gateway.federation.grouping import group_records
from gateway.federation.manifest import Member
from gateway.federation.members import log_origin, manifest_of
from gateway.federation.payloads import (
    DiscloseRequest,
    DiscloseResponse,
    ForceResult,
    PartnerAnswer,
    PartnerDiscloseRequest,
    PartnerSearchRequest,
    PrincipalClaims,
    QueryContext,
    ReceiptOut,
    SearchRequest,
    SearchResponse,
    SearchTermsIn,
)
from gateway.federation.witness import (
    ForkDetected,
    note_seen_checkpoint,
    note_seen_checkpoints,
    verify_partner_checkpoint,
)
from gateway.identity.principals import AnalystPrincipal
from gateway.node import Node
from gateway.ops.metrics import metrics_of
from gateway.search import service as local_search
from gateway.search.service import (
    LocalAnswer,
    SearchTerms,
    disclose_local,
    search_local,
    to_policy_principal,
)
from policies import Mode, PolicyContext
from schemas.enums import S62Operation

log = structlog.get_logger(__name__)

SEARCH_PATH = "/federation/v1/search"
DISCLOSE_PATH = "/federation/v1/disclose"
_DECISION_MAX = 32  # the audit index column width


def new_request_id() -> str:
    return uuid.uuid4().hex


def query_fingerprint(terms: dict[str, Any], context: QueryContext) -> str:
    """A stable hash of what was asked, so auditors can link entries without seeing the terms."""
    material = {"terms": terms, "mode": context.mode, "case_ref": context.case_ref}
    return hashlib.sha256(canonical_json(material)).hexdigest()


def short_decision(summary: str) -> str:
    """The decision summary, compacted to the audit index width when it is long."""
    if len(summary) <= _DECISION_MAX:
        return summary
    compact = ",".join(
        part.split(":")[0][:1] + part.split(":")[1] for part in summary.split(",") if ":" in part
    )
    return compact[:_DECISION_MAX]


def _actor(principal: PrincipalClaims) -> Actor:
    return Actor(
        user_id=principal.user_id,
        force=principal.force,
        roles=tuple(principal.roles),
        vetting=principal.vetting,
    )


def principal_claims(analyst: AnalystPrincipal) -> PrincipalClaims:
    return PrincipalClaims(
        user_id=analyst.user_id,
        force=analyst.force,
        roles=list(analyst.roles),
        vetting=analyst.vetting,
        units=list(analyst.units),
    )


def _policy_context(context: QueryContext, requesting_force: str) -> PolicyContext:
    return PolicyContext(
        purpose=context.purpose,
        case_reference=context.case_ref,
        time=datetime.now(UTC),
        mode=Mode(context.mode),
        justification_present=bool(context.justification.strip()),
        requesting_force=requesting_force,
    )


def _hits_out(answer: LocalAnswer, mode: str) -> list[dict[str, Any]]:
    """What leaves the node: in hits mode opaque references only (Prüm step 1)."""
    if mode == "hits":
        return [
            {"record_id": h.record_id, "kind": h.kind, "outcome": h.outcome} for h in answer.hits
        ]
    return [h.to_json() for h in answer.hits]


# One lock per audit log (and so per event loop that serves it); weak so closed logs go away.
_CHECKPOINT_LOCKS: weakref.WeakKeyDictionary[object, asyncio.Lock] = weakref.WeakKeyDictionary()


async def _checkpoint_covering(node: Node, index: int) -> str:
    """A signed checkpoint that includes entry `index`: the latest if it does, else a new one.

    Concurrent answers wait for one signing instead of each signing its own: the checkpoint one of
    them signs covers every entry appended before it."""
    stored = await asyncio.to_thread(node.audit.log.latest_checkpoint)
    if stored is not None and stored.size > index:
        return stored.note
    lock = _CHECKPOINT_LOCKS.setdefault(node.audit.log, asyncio.Lock())
    async with lock:
        stored = await asyncio.to_thread(node.audit.log.latest_checkpoint)
        if stored is not None and stored.size > index:
            return stored.note
        note = await asyncio.to_thread(node.audit.log.checkpoint)
        return note.to_text()


async def _disclose_and_receipt(
    node: Node,
    *,
    sender: str,
    partner_request_id: str,
    principal: PrincipalClaims,
    context: QueryContext,
    answer: LocalAnswer,
    sealed: dict[str, Any],
    fingerprint: str,
) -> ReceiptOut:
    """Append the disclosure entry (raises AuditUnavailable: then nothing is answered).

    A search cut at the candidate cap is evidence too (the flag tells the asker this force holds
    more records with those identifiers than the cap, even when policy hides them all): the
    sealed payload then holds the cap as `candidates_truncated`. Not in `decision`, whose
    "outcome:count" parts are read as record counts."""
    if answer.truncated:
        # Read at call time, from the module: the cap this search ran under.
        sealed = {**sealed, "candidates_truncated": local_search.MAX_CANDIDATES}
    receipt = await node.audit.record(
        S62Operation.DISCLOSE,
        actor=_actor(principal),
        request_id=new_request_id(),
        purpose=str(context.purpose),
        case_ref=context.case_ref,
        query_fingerprint=fingerprint,
        decision=short_decision(answer.decision or "none"),
        policy_ids=answer.policy_ids,
        policy_hash=answer.policy_hash or None,
        records=answer.matched,
        fields_withheld=answer.fields_withheld,
        recipient_force=sender,
        partner_request_id=partner_request_id,
        sealed=sealed,
        checkpoint=True,
    )
    # The writer signed the tree head of the entry's own batch; a log whose store cannot sign
    # inside the append has given none, and one is signed now.
    checkpoint = receipt.checkpoint or await _checkpoint_covering(node, receipt.index)
    return ReceiptOut(
        force=node.settings.force_code,
        origin=receipt.origin,
        index=receipt.index,
        leaf_hash=receipt.leaf_hash.hex(),
        checkpoint=checkpoint,
    )


async def answer_search(node: Node, sender: str, request: PartnerSearchRequest) -> PartnerAnswer:
    """A partner's search, answered under this force's policy, disclosed only once logged."""
    terms = request.terms.to_terms_json()
    answer = await search_local(
        node=node,
        terms=SearchTerms.from_json(terms),
        principal=to_policy_principal(request.principal, suspended=False),
        context=_policy_context(request.context, sender),
        limit=request.limit,
    )
    receipt = await _disclose_and_receipt(
        node,
        sender=sender,
        partner_request_id=request.request_id,
        principal=request.principal,
        context=request.context,
        answer=answer,
        sealed={"terms": terms, "justification": request.context.justification},
        fingerprint=query_fingerprint(terms, request.context),
    )
    denied = bool(answer.denied_reason) and not answer.hits
    log.info(
        "federation.search_answered",
        to_force=sender,
        hits=len(answer.hits),
        receipt_index=receipt.index,
        truncated=answer.truncated,
    )
    return PartnerAnswer(
        status="denied" if denied else "ok",
        force=node.settings.force_code,
        mode=request.context.mode,
        hit_count=len(answer.hits),
        hits=_hits_out(answer, request.context.mode),
        decision=answer.decision,
        denied_reason=answer.denied_reason,
        receipt=receipt,
        truncated=answer.truncated,
    )


async def answer_disclose(
    node: Node, sender: str, request: PartnerDiscloseRequest
) -> PartnerAnswer:
    context = request.context.model_copy(update={"mode": "records"})
    answer = await disclose_local(
        node=node,
        record_id=request.record_id,
        principal=to_policy_principal(request.principal, suspended=False),
        context=_policy_context(context, sender),
    )
    receipt = await _disclose_and_receipt(
        node,
        sender=sender,
        partner_request_id=request.request_id,
        principal=request.principal,
        context=context,
        answer=answer,
        sealed={"record_id": request.record_id, "justification": context.justification},
        fingerprint=query_fingerprint({"record_id": request.record_id}, context),
    )
    denied = not answer.hits
    log.info("federation.record_disclosed", to_force=sender, receipt_index=receipt.index)
    return PartnerAnswer(
        status="denied" if denied else "ok",
        force=node.settings.force_code,
        mode="records",
        hit_count=len(answer.hits),
        hits=_hits_out(answer, "records"),
        decision=answer.decision,
        denied_reason=answer.denied_reason or ("not found or not disclosable" if denied else None),
        receipt=receipt,
    )


# --- requesting side ----------------------------------------------------------------------------


class FederationUnavailable(Exception):
    """This node has no manifest or is not an active member itself."""


async def _check_receipt(
    node: Node, member: Member, answer: PartnerAnswer, *, remember: bool = True
) -> tuple[dict[str, Any], Checkpoint]:
    """Verify a partner receipt's checkpoint covers the entry; remember it for fork detection
    (unless `remember` is False: the caller then remembers it with `note_seen_checkpoints`)."""
    receipt = answer.receipt
    if receipt.force != member.force_code or receipt.origin != log_origin(member.force_code):
        raise PartnerFailure("bad_signature", "the receipt is for another log")
    try:
        checkpoint = verify_partner_checkpoint(member, receipt.checkpoint)
    except CheckpointError as exc:
        raise PartnerFailure("bad_signature", "the receipt's checkpoint does not verify") from exc
    if checkpoint.size <= receipt.index:
        raise PartnerFailure("bad_signature", "the receipt's checkpoint does not cover the entry")
    if remember:
        try:
            await note_seen_checkpoint(node, member.force_code, checkpoint, receipt.checkpoint)
        except ForkDetected as exc:
            raise PartnerFailure("bad_signature", str(exc)) from exc
    return receipt.model_dump(), checkpoint


def _targets(node: Node, forces: Sequence[str] | None) -> tuple[list[Member], list[ForceResult]]:
    holder = manifest_of(node)
    own = node.settings.force_code
    if holder is None:
        if forces and any(f != own for f in forces):
            raise FederationUnavailable("this node holds no federation manifest")
        return [], []
    members = {m.force_code: m for m in holder.current.members}
    wanted = (
        list(dict.fromkeys(forces)) if forces else [m.force_code for m in holder.active_members()]
    )
    targets: list[Member] = []
    refused: list[ForceResult] = []
    for code in wanted:
        if code == own:
            continue
        member = members.get(code)
        if member is None:
            refused.append(ForceResult(force=code, status="error", detail="not a member"))
        elif member.status != "active":
            refused.append(ForceResult(force=code, status="denied", detail="member suspended"))
        else:
            targets.append(member)
    return targets, refused


def _own_suspended(node: Node) -> bool:
    holder = manifest_of(node)
    if holder is None:
        return False
    member = holder.member(node.settings.force_code)
    return member is not None and member.status != "active"


async def _ask(
    node: Node,
    client: PartnerClient,
    member: Member,
    path: str,
    payload: dict[str, Any],
    deadline: float,
    *,
    remember: bool = True,
) -> tuple[ForceResult, PartnerAnswer | None, dict[str, Any] | None, Checkpoint | None]:
    """One partner call: (result, answer, receipt, the receipt's verified checkpoint)."""
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 2)

    try:
        async with asyncio.timeout(deadline):
            reply = await client.call(member, "POST", path, payload)
        try:
            answer = PartnerAnswer.model_validate(reply.body)
        except ValueError as exc:
            raise PartnerFailure("error", "the partner's answer has the wrong shape") from exc
        if answer.force != member.force_code:
            raise PartnerFailure("bad_signature", "the answer names another force")
        receipt, checkpoint = await _check_receipt(node, member, answer, remember=remember)
    except TimeoutError:
        return (
            ForceResult(
                force=member.force_code,
                status="timeout",
                detail="deadline passed",
                elapsed_ms=elapsed(),
            ),
            None,
            None,
            None,
        )
    except PartnerFailure as exc:
        return (
            ForceResult(
                force=member.force_code,
                status=exc.status,
                detail=exc.detail,
                elapsed_ms=elapsed(),
            ),
            None,
            None,
            None,
        )
    result = ForceResult(
        force=member.force_code,
        status=answer.status,
        detail=answer.denied_reason,
        hit_count=answer.hit_count,
        hits=answer.hits,
        decision=answer.decision,
        receipt_index=answer.receipt.index,
        elapsed_ms=elapsed(),
        truncated=answer.truncated,
    )
    return result, answer, receipt, checkpoint


def _statuses(results: Sequence[ForceResult]) -> str:
    counts = Counter(r.status for r in results)
    return short_decision(",".join(f"{k}:{v}" for k, v in sorted(counts.items())))


class _AnalystQuestion(Protocol):
    purpose: Any
    case_ref: str


async def _record_for_analyst(
    node: Node,
    kind: EntryKind,
    *,
    analyst: AnalystPrincipal,
    request: _AnalystQuestion,
    request_id: str,
    fingerprint: str,
    **fields: Any,
) -> Receipt:
    """An entry of the requesting node about an analyst's question (consult, completion): who
    asked, why, for which case and which question, plus what the step adds."""
    return await node.audit.record(
        kind,
        actor=analyst.actor(),
        request_id=request_id,
        purpose=str(request.purpose),
        case_ref=request.case_ref,
        query_fingerprint=fingerprint,
        **fields,
    )


async def federated_search(
    *,
    node: Node,
    client: PartnerClient,
    analyst: AnalystPrincipal,
    request: SearchRequest,
    request_id: str,
) -> SearchResponse:
    """One analyst question to every chosen force, own force included, under each owner's policy."""
    own = node.settings.force_code
    targets, refused = _targets(node, request.forces)
    ask_own = request.forces is None or own in request.forces
    terms = request.terms().to_terms_json()
    context = request.context()
    principal = principal_claims(analyst)
    fingerprint = query_fingerprint(terms, context)
    sealed = {"terms": terms, "justification": request.justification}
    # 1. The outbound query is logged before anything is asked (raises AuditUnavailable).
    await _record_for_analyst(
        node,
        S62Operation.CONSULT,
        analyst=analyst,
        request=request,
        request_id=request_id,
        fingerprint=fingerprint,
        decision="requested",
        sealed={**sealed, "forces": [m.force_code for m in targets] + ([own] if ask_own else [])},
    )
    # 2. Partners and the own force, concurrently; each partner has its own deadline.
    payload = PartnerSearchRequest(
        request_id=request_id,
        principal=principal,
        context=context,
        terms=SearchTermsIn.model_validate(terms),
        limit=request.limit,
    ).model_dump(mode="json")
    deadline = node.settings.partner_deadline_seconds
    partner_calls = [
        _ask(node, client, m, SEARCH_PATH, payload, deadline, remember=False) for m in targets
    ]
    local_task = (
        search_local(
            node=node,
            terms=SearchTerms.from_json(terms),
            principal=to_policy_principal(analyst, suspended=_own_suspended(node)),
            context=_policy_context(context, own),
            limit=request.limit,
        )
        if ask_own
        else None
    )
    gathered = await asyncio.gather(
        *partner_calls, *([local_task] if local_task is not None else []), return_exceptions=True
    )
    results: list[ForceResult] = list(refused)
    receipts: list[dict[str, Any]] = []
    own_answer: LocalAnswer | None = None
    answered: list[tuple[ForceResult, dict[str, Any], Checkpoint, str]] = []
    for member, outcome in zip(targets, gathered[: len(targets)], strict=True):
        if isinstance(outcome, BaseException):
            log.warning(
                "federation.partner_failed",
                force=member.force_code,
                error_type=type(outcome).__name__,
            )
            results.append(ForceResult(force=member.force_code, status="error"))
            continue
        result, answer, receipt, checkpoint = outcome
        if receipt is not None and checkpoint is not None and answer is not None:
            answered.append((result, receipt, checkpoint, answer.receipt.checkpoint))
        else:
            results.append(result)
    # Every receipt's checkpoint is remembered for fork detection, all in one transaction.
    forked: set[str] = set()
    if answered:
        try:
            forked = await note_seen_checkpoints(
                node, [(result.force, checkpoint, note) for result, _, checkpoint, note in answered]
            )
        except Exception as exc:
            # As when one partner's check fails: those partners are errors, the search goes on.
            log.warning("federation.checkpoints_not_remembered", error_type=type(exc).__name__)
            results.extend(ForceResult(force=r.force, status="error") for r, *_ in answered)
            answered = []
    for result, receipt, checkpoint, _note in answered:
        if result.force in forked:
            results.append(
                ForceResult(
                    force=result.force,
                    status="bad_signature",
                    detail=(
                        f"force {result.force} signed two different trees of size {checkpoint.size}"
                    ),
                    elapsed_ms=result.elapsed_ms,
                )
            )
            continue
        results.append(result)
        receipts.append(receipt)
    if local_task is not None:
        local = gathered[-1]
        if isinstance(local, BaseException):
            if isinstance(local, ValueError):
                raise local
            results.append(ForceResult(force=own, status="error", detail="local search failed"))
        else:
            own_answer = local
            denied = bool(local.denied_reason) and not local.hits
            results.append(
                ForceResult(
                    force=own,
                    status="denied" if denied else "ok",
                    detail=local.denied_reason,
                    hit_count=len(local.hits),
                    hits=_hits_out(local, request.mode),
                    decision=local.decision,
                    truncated=local.truncated,
                )
            )
    metrics_of(node).federation_results(results, own=own, operation="search")
    # 3. The completion entry holds every receipt and what the own force disclosed, and (sealed,
    #    like the terms) which forces answered truncated; the analyst sees nothing unless it is
    #    durable.
    truncated_forces = sorted({r.force for r in results if r.truncated})
    await _record_for_analyst(
        node,
        SecurityEvent.SEARCH_COMPLETED,
        analyst=analyst,
        request=request,
        request_id=request_id,
        fingerprint=fingerprint,
        decision=_statuses(results),
        policy_ids=own_answer.policy_ids if own_answer else (),
        policy_hash=(own_answer.policy_hash or None) if own_answer else None,
        records=own_answer.matched if own_answer else (),
        fields_withheld=own_answer.fields_withheld if own_answer else (),
        receipts=receipts,
        sealed={"truncated_forces": truncated_forces} if truncated_forces else None,
    )
    results.sort(key=lambda r: r.force)
    groups = group_records(results) if request.mode == "records" else []
    log.info(
        "federation.search_completed",
        request_id=request_id,
        forces=len(results),
        receipts=len(receipts),
    )
    return SearchResponse(request_id=request_id, mode=request.mode, results=results, groups=groups)


async def federated_disclose(
    *,
    node: Node,
    client: PartnerClient,
    analyst: AnalystPrincipal,
    force: str,
    record_id: str,
    request: DiscloseRequest,
    request_id: str,
) -> DiscloseResponse:
    """Step 2 after a hit: one record from one force, as that force's policy allows."""
    own = node.settings.force_code
    context = QueryContext(
        purpose=request.purpose,
        justification=request.justification,
        case_ref=request.case_ref,
        mode="records",
    )
    fingerprint = query_fingerprint({"record_id": record_id, "force": force}, context)
    sealed = {"record_id": record_id, "justification": request.justification}
    await _record_for_analyst(
        node,
        S62Operation.CONSULT,
        analyst=analyst,
        request=request,
        request_id=request_id,
        fingerprint=fingerprint,
        decision="requested",
        recipient_force=force if force != own else None,
        sealed={**sealed, "force": force},
    )
    receipts: list[dict[str, Any]] = []
    records: list[RecordRef] = []
    policy_ids: tuple[str, ...] = ()
    policy_hash: str | None = None
    withheld: list[str] = []
    if force == own:
        local = await disclose_local(
            node=node,
            record_id=record_id,
            principal=to_policy_principal(analyst, suspended=_own_suspended(node)),
            context=_policy_context(context, own),
        )
        hit = local.hits[0] if local.hits else None
        response = DiscloseResponse(
            request_id=request_id,
            force=force,
            status="ok" if hit else "denied",
            detail=None if hit else (local.denied_reason or "not found or not disclosable"),
            outcome=hit.outcome if hit else None,
            record=hit.record if hit else None,
            withheld=hit.withheld if hit else [],
            contact=hit.contact if hit else None,
        )
        records, policy_ids, withheld = local.matched, local.policy_ids, local.fields_withheld
        policy_hash = local.policy_hash or None
        decision = short_decision(local.decision or "none")
    else:
        targets, refused = _targets(node, [force])
        if refused or not targets:
            result = refused[0] if refused else ForceResult(force=force, status="error")
            response = DiscloseResponse(
                request_id=request_id, force=force, status=result.status, detail=result.detail
            )
            decision = result.status
        else:
            payload = PartnerDiscloseRequest(
                request_id=request_id,
                principal=principal_claims(analyst),
                context=context,
                record_id=record_id,
            ).model_dump(mode="json")
            result, answer, receipt, _checkpoint = await _ask(
                node,
                client,
                targets[0],
                DISCLOSE_PATH,
                payload,
                node.settings.partner_deadline_seconds,
            )
            metrics_of(node).federation_called(
                partner=force, operation="disclose", status=result.status
            )
            if receipt is not None:
                receipts.append(receipt)
            shown = answer.hits[0] if answer and answer.hits else None
            response = DiscloseResponse(
                request_id=request_id,
                force=force,
                status=result.status,
                detail=result.detail,
                outcome=str(shown.get("outcome")) if shown else None,
                record=shown.get("record") if shown else None,
                withheld=[str(w) for w in shown.get("withheld") or []] if shown else [],
                contact=shown.get("contact") if shown else None,
                receipt_index=result.receipt_index,
            )
            decision = result.status
    await _record_for_analyst(
        node,
        SecurityEvent.SEARCH_COMPLETED,
        analyst=analyst,
        request=request,
        request_id=request_id,
        fingerprint=fingerprint,
        decision=decision,
        policy_ids=policy_ids,
        policy_hash=policy_hash,
        records=records,
        fields_withheld=withheld,
        recipient_force=force if force != own else None,
        receipts=receipts,
    )
    return response
