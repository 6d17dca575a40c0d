"""The analysts' federated search (`POST /v1/search`) and two-step disclosure
(`POST /v1/records/{force}/{record_id}/disclose`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel

from audit.store.base import AuditUnavailable
from gateway.deps import NodeDep, request_id_of
from gateway.errors import BadRequest, ServiceUnavailable, UnprocessableContent
from gateway.federation.payloads import (
    DiscloseRequest,
    DiscloseResponse,
    SearchRequest,
    SearchResponse,
)
from gateway.federation.runtime import FederationRuntime, get_federation
from gateway.federation.service import (
    FederationUnavailable,
    federated_disclose,
    federated_search,
    new_request_id,
)
from gateway.identity.analysts import require_analyst
from gateway.identity.principals import AnalystPrincipal
from gateway.search.service import SearchTerms, UnusableTerms, unusable_terms

router = APIRouter(tags=["analysts"])
PROBLEM: dict[int | str, dict[str, Any]] = {
    code: {"content": {"application/problem+json": {}}} for code in (400, 401, 422, 503)
}
Analyst = Annotated[AnalystPrincipal, Depends(require_analyst)]
Runtime = Annotated[FederationRuntime, Depends(get_federation)]


def _request_id(request: Request) -> str:
    given = request_id_of(request)
    return given if given and len(given) <= 64 else new_request_id()


@router.post(
    "/v1/search",
    response_model=SearchResponse,
    summary="Search every partner force (and your own) under each owner's policy",
    description=(
        "Answers by the partner deadline with a status per force: ok, denied, timeout, "
        "unreachable, bad_signature or error. `hits` mode returns counts and opaque references; "
        "`records` mode returns policy-filtered records, grouped across forces by identifier."
    ),
    responses=PROBLEM,
)
async def search(
    body: SearchRequest, request: Request, analyst: Analyst, node: NodeDep, runtime: Runtime
) -> Response:
    if not body.terms().to_terms_json().keys() - {"kinds"}:
        raise BadRequest("Give at least one of phone, vrm, name, dob, postcode, line_name.")
    # Before anything is logged or asked: a field that gives nothing to look up is refused, so
    # that a search never quietly becomes broader than the one asked for.
    problems = unusable_terms(SearchTerms.from_json(body.terms().to_terms_json()))
    if problems:
        raise UnprocessableContent(
            f"Some search terms give nothing to look up: {UnusableTerms(problems)}.",
            extra={"errors": [{"pointer": f"/{n}", "detail": w} for n, w in problems.items()]},
        )
    try:
        answer = await federated_search(
            node=node,
            client=runtime.client,
            analyst=analyst,
            request=body,
            request_id=_request_id(request),
        )
    except AuditUnavailable as exc:
        raise ServiceUnavailable("The audit log is unavailable; no search is made.") from exc
    except FederationUnavailable as exc:
        raise BadRequest(str(exc)) from exc
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    return _json(answer)


def _json(answer: BaseModel) -> Response:
    """The answer serialised once by pydantic. (Returned as a model, FastAPI would dump it to a
    dict, validate that against the response model again and then encode it: three passes over
    what can be fifty records.) The documented schema is still `response_model`."""
    return Response(content=answer.model_dump_json(), media_type="application/json")


@router.post(
    "/v1/records/{force}/{record_id}/disclose",
    response_model=DiscloseResponse,
    summary="Step 2 after a hit: one record as its owner's policy allows",
    responses=PROBLEM,
)
async def disclose(
    force: Annotated[str, Path(min_length=2, max_length=8)],
    record_id: Annotated[str, Path(min_length=1, max_length=64)],
    body: DiscloseRequest,
    request: Request,
    analyst: Analyst,
    node: NodeDep,
    runtime: Runtime,
) -> DiscloseResponse:
    try:
        return await federated_disclose(
            node=node,
            client=runtime.client,
            analyst=analyst,
            force=force,
            record_id=record_id,
            request=body,
            request_id=_request_id(request),
        )
    except AuditUnavailable as exc:
        raise ServiceUnavailable("The audit log is unavailable; nothing is disclosed.") from exc
