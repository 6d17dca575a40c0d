"""The auditor console's pages (`/console/...`) and the JSON the pages' scripts fetch.

Every page view and every data fetch is an `audit_access` entry written before the answer (fail
closed: no entry, no page). Only auditors of this node's force get past `ConsoleAuditor`.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import structlog
from authlib.integrations.base_client import OAuthError
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from audit.checkpoint import Checkpoint, SignedNote
from audit.entry import SecurityEvent
from audit.errors import CheckpointError
from audit.store.base import AuditUnavailable
from gateway.audit_api.tables import AuditIndexRecordRow
from gateway.console import charts
from gateway.console.auth import (
    OAUTH_NAME,
    SESSION_KEY,
    ConsoleUser,
    SignInRequired,
    session_user,
    user_from_claims,
)
from gateway.console.config import ConsoleSettings
from gateway.console.service import (
    IDENTIFIER_FIELDS,
    QUERY_KINDS,
    EntryFilter,
    WhoLookedQuery,
    export_csv,
    export_ndjson_lines,
    filtered_rows,
    list_entries,
    read_entry,
    search_terms_of,
    who_looked,
)
from gateway.console.signals import Activity, detect_signals
from gateway.console.templating import templates
from gateway.deps import NodeDep, SessionDep, audit_auth_failure, request_id_of
from gateway.errors import Forbidden, NotFound, ServiceUnavailable, Unauthenticated
from gateway.node import Node
from schemas.enums import Purpose, S62Operation
from schemas.fields import IndexKind

router = APIRouter(prefix="/console", include_in_schema=False)
log = structlog.get_logger(__name__)

OPERATIONS = [op.value for op in S62Operation] + [ev.value for ev in SecurityEvent]
PURPOSES = [p.value for p in Purpose]
DEFAULT_WINDOW = timedelta(days=30)
SIGNAL_ROWS = 20_000
_NO_STORE = {"Cache-Control": "no-store"}
# Scripts and styles only from the node itself: the console holds personal data and must not run
# anything injected into an entry it displays.
_PAGE_HEADERS = {
    **_NO_STORE,
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # URLs carry record ids and entry indexes
    "X-Content-Type-Options": "nosniff",
}


def console_settings(request: Request) -> ConsoleSettings:
    value: ConsoleSettings | None = getattr(request.app.state, "console_settings", None)
    return value or ConsoleSettings()


def _is_auditor(user: ConsoleUser, node: Node, console: ConsoleSettings) -> bool:
    return user.force == node.settings.force_code and console.auditor_role in user.roles


async def require_console_auditor(request: Request, node: NodeDep) -> ConsoleUser:
    """A signed-in auditor of this force, or a redirect to sign-in."""
    user = session_user(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    if not _is_auditor(user, node, console_settings(request)):
        raise Forbidden("The console is for auditors of this force.")
    return user


async def require_console_api_auditor(request: Request, node: NodeDep) -> ConsoleUser:
    user = session_user(request)
    if user is None:
        raise Unauthenticated("Sign in to the console first.")
    if not _is_auditor(user, node, console_settings(request)):
        raise Forbidden("The console is for auditors of this force.")
    return user


ConsoleAuditor = Annotated[ConsoleUser, Depends(require_console_auditor)]
ConsoleApiAuditor = Annotated[ConsoleUser, Depends(require_console_api_auditor)]


async def log_view(
    node: Node,
    request: Request,
    user: ConsoleUser,
    what: str,
    *,
    sealed: dict[str, Any] | None = None,
) -> None:
    """The audit entry of one console view; raises 503 (and shows nothing) if it cannot be made."""
    try:
        await node.audit.record(
            SecurityEvent.AUDIT_ACCESS,
            actor=user.actor(),
            request_id=request_id_of(request),
            purpose=f"console:{what}"[:32],
            sealed=sealed,
        )
    except AuditUnavailable as exc:
        raise ServiceUnavailable("The audit log cannot record this view; try again.") from exc


def _page(
    request: Request, template: str, user: ConsoleUser, node: Node, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {"user": user, "force": node.settings.force_code, **context},
        headers=_PAGE_HEADERS,
    )


def _safe_next(value: str | None) -> str:
    # Only paths inside the console: an open redirect after sign-in is a phishing aid.
    if value and value.startswith("/console/") and "//" not in value and "\\" not in value:
        return value
    return "/console/"


# --- sign-in ------------------------------------------------------------------------------------


@router.get("/login")
async def login(request: Request, node: NodeDep) -> Response:
    oauth = request.app.state.console_oauth
    request.session["next"] = _safe_next(request.query_params.get("next"))
    redirect_uri = node.settings.node_url.rstrip("/") + "/console/auth/callback"
    client = oauth.create_client(OAUTH_NAME)
    try:
        response: Response = await client.authorize_redirect(request, redirect_uri)
    except Exception as exc:
        log.warning("console.issuer_unreachable", error_type=type(exc).__name__)
        raise ServiceUnavailable("The identity provider cannot be reached.") from exc
    return response


@router.get("/auth/callback")
async def auth_callback(request: Request, node: NodeDep) -> Response:
    console = console_settings(request)
    client = request.app.state.console_oauth.create_client(OAUTH_NAME)
    try:
        token = await client.authorize_access_token(request)
    except OAuthError as exc:
        await audit_auth_failure(node, request, "console_sign_in")
        return templates.TemplateResponse(
            request,
            "signed_out.html",
            {"message": f"Sign-in failed: {exc.error}.", "user": None},
            status_code=401,
            headers=_NO_STORE,
        )
    claims = dict(token.get("userinfo") or {})
    user = user_from_claims(claims, console.issuer_url(node.settings))
    if user is None or not _is_auditor(user, node, console):
        actor = user.actor() if user is not None else None
        await audit_auth_failure(node, request, "console_not_auditor", actor=actor)
        request.session.clear()
        return templates.TemplateResponse(
            request,
            "signed_out.html",
            {"message": "The console is only for auditors of this force.", "user": None},
            status_code=403,
            headers=_NO_STORE,
        )
    next_path = _safe_next(request.session.get("next"))
    request.session.clear()
    expires = min(
        float(claims.get("exp", 0)) or float("inf"),
        datetime.now(UTC).timestamp() + console.session_max_age_seconds,
    )
    request.session[SESSION_KEY] = user.to_session(expires)
    await log_view(node, request, user, "sign_in")
    log.info("console.signed_in", user_id=user.user_id)
    return RedirectResponse(next_path, status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    request.session.clear()
    return templates.TemplateResponse(
        request,
        "signed_out.html",
        {"message": "You have signed out of the console.", "user": None},
        headers=_NO_STORE,
    )


# --- access log ---------------------------------------------------------------------------------


def _filter_context(entry_filter: EntryFilter) -> dict[str, Any]:
    return {
        "filter": entry_filter.form_values(),
        "filter_query": urlencode(entry_filter.query_pairs()),
        "operations": OPERATIONS,
        "purposes": PURPOSES,
    }


@router.get("/", response_class=HTMLResponse)
async def access_log(
    request: Request, user: ConsoleAuditor, node: NodeDep, session: SessionDep
) -> HTMLResponse:
    entry_filter = EntryFilter.from_query(request.query_params)
    before_text = request.query_params.get("before", "")
    before = int(before_text) if before_text.isdigit() else None
    await log_view(node, request, user, "access_log")
    await node.audit.rebuild_index()
    page = await list_entries(session=session, entry_filter=entry_filter, before=before)
    older = None
    if page.next_before is not None:
        older = urlencode([*entry_filter.query_pairs(), ("before", str(page.next_before))])
    return _page(
        request,
        "entries.html",
        user,
        node,
        entries=page.entries,
        older=older,
        **_filter_context(entry_filter),
    )


@router.get("/export.{fmt}")
async def export(
    fmt: Annotated[str, Path(pattern="^(csv|ndjson)$")],
    request: Request,
    user: ConsoleAuditor,
    node: NodeDep,
    session: SessionDep,
) -> Response:
    entry_filter = EntryFilter.from_query(request.query_params)
    await log_view(node, request, user, f"export_{fmt}:{entry_filter.describe()}")
    await node.audit.rebuild_index()
    rows = await filtered_rows(session=session, entry_filter=entry_filter)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"audit-{node.settings.force_code}-{stamp}.{fmt}"
    headers = {**_NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "csv":
        return Response(export_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
    lines = await export_ndjson_lines(node, rows)
    return Response(b"".join(lines), media_type="application/x-ndjson", headers=headers)


def _witness_keys(node: Node) -> list[dict[str, str]]:
    """Public keys of federation members, so the browser can check witnesses' cosignatures."""
    holder = getattr(node, "manifest", None)
    if holder is None:
        return []
    keys = []
    for member in holder.current.members:
        for jwk in member.signing_keys:
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and jwk.get("x"):
                keys.append({"force": member.force_code, "x": str(jwk["x"])})
    return keys


def _pinned_log_key(node: Node) -> str | None:
    """This log's verifier key as the federation manifest states it: a second opinion the
    browser compares with the key the node serves."""
    holder = getattr(node, "manifest", None)
    member = holder.member(node.settings.force_code) if holder is not None else None
    return getattr(member, "log_key", None)


@router.get("/entries/{index}", response_class=HTMLResponse)
async def entry_page(
    index: Annotated[int, Path(ge=0)], request: Request, user: ConsoleAuditor, node: NodeDep
) -> HTMLResponse:
    detail = await read_entry(node, index)
    if detail is None:
        raise NotFound(f"There is no audit entry {index}.")
    await log_view(node, request, user, "read_entry")
    return _page(
        request,
        "entry.html",
        user,
        node,
        detail=detail,
        content_json=json.dumps(detail.content, indent=2, ensure_ascii=False),
        sealed_json=(
            json.dumps(detail.sealed, indent=2, ensure_ascii=False)
            if isinstance(detail.sealed, dict)
            else detail.sealed
        ),
        verify_config=Markup(  # noqa: S704 - JSON of our own values, escaped for a script tag
            json.dumps(
                {
                    "index": index,
                    "origin": node.settings.log_origin,
                    "pinned_key": _pinned_log_key(node),
                    "witness_keys": _witness_keys(node),
                }
            ).replace("<", "\\u003c")
        ),
    )


@router.get("/api/entries/{index}/bytes")
async def entry_bytes(
    index: Annotated[int, Path(ge=0)], request: Request, user: ConsoleApiAuditor, node: NodeDep
) -> JSONResponse:
    """The entry exactly as the log stores it, for the browser to hash itself."""
    size = await asyncio.to_thread(node.audit.log.size)
    if index >= size:
        raise NotFound(f"There is no audit entry {index}.")
    await log_view(node, request, user, "entry_bytes")
    raw = await asyncio.to_thread(node.audit.log.entry, index)
    return JSONResponse(
        {"index": index, "entry": base64.b64encode(raw).decode("ascii")}, headers=_NO_STORE
    )


async def _cosigned_notes(node: Node, session: SessionDep) -> list[dict[str, Any]]:
    """The newest checkpoint each partner cosigned as witness of this log."""
    try:
        from gateway.federation.tables import CosignatureRow
    except ImportError:
        return []
    newest = (
        select(col(CosignatureRow.witness_force), func.max(CosignatureRow.size).label("size"))
        .group_by(col(CosignatureRow.witness_force))
        .subquery()
    )
    statement = (
        select(CosignatureRow)
        .join(
            newest,
            (col(CosignatureRow.witness_force) == newest.c.witness_force)
            & (col(CosignatureRow.size) == newest.c.size),
        )
        .order_by(col(CosignatureRow.witness_force), col(CosignatureRow.id).desc())
    )
    try:
        rows = list((await session.execute(statement)).scalars())
    except SQLAlchemyError:
        # A node without the federation tables has no witnesses yet.
        await session.rollback()
        return []
    seen: set[str] = set()
    notes = []
    for row in rows:
        if row.witness_force in seen:
            continue
        seen.add(row.witness_force)
        notes.append(
            {
                "force": row.witness_force,
                "size": row.size,
                "note": row.note,
                "collected_at": row.collected_at.isoformat(),
            }
        )
    return notes


@router.get("/api/witnessed")
async def witnessed(
    request: Request, user: ConsoleApiAuditor, node: NodeDep, session: SessionDep
) -> JSONResponse:
    """Checkpoints of this log that partners cosigned (signed notes; the browser checks them)."""
    return JSONResponse({"checkpoints": await _cosigned_notes(node, session)}, headers=_NO_STORE)


# --- who looked at this? ------------------------------------------------------------------------


@router.get("/who", response_class=HTMLResponse)
async def who_page(
    request: Request, user: ConsoleAuditor, node: NodeDep, session: SessionDep
) -> HTMLResponse:
    query = WhoLookedQuery.from_query(request.query_params)
    answer = None
    if query.empty:
        await log_view(node, request, user, "who_looked")
    else:
        # The identifier the auditor asked about is personal data: sealed in the entry.
        sealed: dict[str, Any] = {"who_looked": dict(query.identifiers)}
        if query.record_id:
            sealed["record_id"] = query.record_id
        await log_view(node, request, user, "who_looked", sealed=sealed)
        await node.audit.rebuild_index()
        answer = await who_looked(
            node=node,
            session=session,
            query=query,
            scan_limit=console_settings(request).scan_limit,
        )
    values = {name: query.identifiers.get(name, "") for name in IDENTIFIER_FIELDS}
    values["record_id"] = query.record_id or ""
    values["from"] = request.query_params.get("from", "")
    values["to"] = request.query_params.get("to", "")
    return _page(request, "who.html", user, node, answer=answer, values=values)


# --- integrity ----------------------------------------------------------------------------------


def _parse_note(note: str) -> dict[str, Any]:
    try:
        signed = SignedNote.parse(note)
        checkpoint = Checkpoint.parse_body(signed.text)
    except CheckpointError:
        return {"valid": False}
    return {
        "valid": True,
        "origin": checkpoint.origin,
        "size": checkpoint.size,
        "root": checkpoint.root_hash.hex(),
        "signers": [sig.key_name for sig in signed.signatures],
    }


async def _last_reconciles(session: SessionDep) -> list[Any]:
    """The latest reconcile outcome per partner force."""
    from gateway.federation.tables import ReconcileResultRow

    rows = (
        await session.execute(
            select(ReconcileResultRow).order_by(col(ReconcileResultRow.id).desc()).limit(500)
        )
    ).scalars()
    latest: dict[str, Any] = {}
    for row in rows:
        latest.setdefault(row.force, row)
    return [latest[force] for force in sorted(latest)]


async def _partner_state(session: SessionDep) -> dict[str, Any]:
    try:
        from gateway.federation.tables import ForkEvidenceRow, WitnessStateRow
    except ImportError:
        return {"witnessing": [], "forks": [], "reconciled": []}
    try:
        witnessing = list(
            (await session.execute(select(WitnessStateRow).order_by(WitnessStateRow.force)))
            .scalars()
            .all()
        )
        forks = list(
            (
                await session.execute(
                    select(ForkEvidenceRow).order_by(col(ForkEvidenceRow.detected_at).desc())
                )
            )
            .scalars()
            .all()
        )
        reconciled = await _last_reconciles(session)
    except SQLAlchemyError:
        await session.rollback()
        return {"witnessing": [], "forks": [], "reconciled": []}
    return {"witnessing": witnessing, "forks": forks, "reconciled": reconciled}


@router.get("/integrity", response_class=HTMLResponse)
async def integrity_page(
    request: Request, user: ConsoleAuditor, node: NodeDep, session: SessionDep
) -> HTMLResponse:
    await log_view(node, request, user, "integrity")
    stored = await asyncio.to_thread(node.audit.log.latest_checkpoint)
    latest = None
    if stored is not None:
        latest = {**_parse_note(stored.note), "note": stored.note, "at": stored.created_at}
    size = await asyncio.to_thread(node.audit.log.size)
    cosigned = await _cosigned_notes(node, session)
    for item in cosigned:
        item.update({k: v for k, v in _parse_note(item["note"]).items() if k != "size"})
    partners = await _partner_state(session)
    return _page(
        request,
        "integrity.html",
        user,
        node,
        latest=latest,
        size=size,
        cosigned=cosigned,
        partners=partners,
        pinned_key=_pinned_log_key(node),
        verify_config=Markup(  # noqa: S704 - JSON of our own values, escaped for a script tag
            json.dumps(
                {
                    "index": None,
                    "origin": node.settings.log_origin,
                    "pinned_key": _pinned_log_key(node),
                    "witness_keys": _witness_keys(node),
                }
            ).replace("<", "\\u003c")
        ),
    )


# --- misuse signals -----------------------------------------------------------------------------


def _staff_surnames(node: Node) -> dict[str, frozenset[str]]:
    """Blind name terms of each member of staff's surname, from data_dir/staff.json
    ({"user id": "Full Name"}) or, on a development node, the built-in issuer's demo users."""
    path = node.settings.data_dir / "staff.json"
    names: dict[str, str] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = {}
        if isinstance(loaded, dict):
            names = {str(k): str(v) for k, v in loaded.items() if isinstance(v, str)}
    elif node.settings.builtin_issuer_enabled:
        from gateway.identity.issuer_login import DEMO_USERS

        names = {user.user_id: user.name.split("(")[0] for user in DEMO_USERS}
    return {
        user_id: _name_part_tags(node, full.split()[-1])
        for user_id, full in names.items()
        if full.split()
    }


def _name_part_tags(node: Node, value: str) -> frozenset[str]:
    try:
        terms = node.keys.index.terms(IndexKind.NAME, value)
    except (ValueError, TypeError):
        return frozenset()
    return frozenset(t.tag_hex for t in terms if t.term_kind == "name_part")


async def _activity(
    node: Node, session: SessionDep, entry_filter: EntryFilter, limit: int
) -> list[Activity]:
    rows = await filtered_rows(
        session=session,
        entry_filter=entry_filter,
        limit=limit,
    )
    rows = [row for row in rows if row.kind in QUERY_KINDS and row.user_id]
    records: dict[int, list[str]] = {}
    if rows:
        statement = select(AuditIndexRecordRow).where(
            col(AuditIndexRecordRow.idx).in_([row.index for row in rows])
        )
        for ref in (await session.execute(statement)).scalars():
            records.setdefault(ref.idx, []).append(ref.record_id)
    activity = []
    for row in rows:
        name_parts: frozenset[str] = frozenset()
        if row.kind != "disclose":
            detail = await read_entry(node, row.index)
            terms = search_terms_of(detail.sealed) if detail is not None else {}
            if "name" in terms:
                name_parts = _name_part_tags(node, terms["name"])
        assert row.user_id is not None
        activity.append(
            Activity(
                index=row.index,
                time=row.time,
                kind=row.kind,
                user_id=row.user_id,
                case_ref=row.case_ref,
                decision=row.decision,
                records=tuple(records.get(row.index, ())),
                searched_name_parts=name_parts,
                request_id=row.request_id,
            )
        )
    return activity


def _window(request: Request) -> EntryFilter:
    entry_filter = EntryFilter.from_query(request.query_params)
    if entry_filter.since is None and entry_filter.until is None:
        since = datetime.now(UTC) - DEFAULT_WINDOW
        entry_filter = EntryFilter(
            **{**entry_filter.__dict__, "since": since.replace(second=0, microsecond=0)}
        )
    return entry_filter


@router.get("/signals", response_class=HTMLResponse)
async def signals_page(
    request: Request, user: ConsoleAuditor, node: NodeDep, session: SessionDep
) -> HTMLResponse:
    entry_filter = _window(request)
    await log_view(node, request, user, "signals")
    await node.audit.rebuild_index()
    activity = await _activity(node, session, entry_filter, SIGNAL_ROWS)
    users = detect_signals(activity, staff_surnames=_staff_surnames(node))
    return _page(
        request,
        "signals.html",
        user,
        node,
        users=users,
        **_filter_context(entry_filter),
    )


@router.get("/charts", response_class=HTMLResponse)
async def charts_page(
    request: Request, user: ConsoleAuditor, node: NodeDep, session: SessionDep
) -> HTMLResponse:
    entry_filter = _window(request)
    await log_view(node, request, user, "charts")
    await node.audit.rebuild_index()
    rows = await filtered_rows(session=session, entry_filter=entry_filter, limit=SIGNAL_ROWS)
    by_partner = charts.queries_by_partner(rows, node.settings.force_code)
    by_purpose = charts.queries_by_purpose(rows)
    by_decision = charts.disclosures_by_decision(rows)
    # The chart builders escape every label and value they put into the SVG.
    partner_svg = charts.stacked_bars_svg(by_partner, title="Queries per day by partner force")
    purpose_svg = charts.stacked_bars_svg(by_purpose, title="Queries per day by purpose")
    decision_svg = charts.bars_svg(by_decision, title="Disclosures by decision")
    return _page(
        request,
        "charts.html",
        user,
        node,
        partner_svg=Markup(partner_svg),  # noqa: S704
        purpose_svg=Markup(purpose_svg),  # noqa: S704
        decision_svg=Markup(decision_svg),  # noqa: S704
        by_partner=by_partner,
        by_purpose=by_purpose,
        by_decision=by_decision,
        **_filter_context(entry_filter),
    )


def sign_in_redirect(request: Request, exc: Exception) -> Response:
    """Exception handler: unauthenticated page views go to sign-in and come back afterwards."""
    target = exc.next_path if isinstance(exc, SignInRequired) else "/console/"
    return RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303)


__all__ = ["router", "sign_in_redirect"]
