"""`/healthz` says the process is alive; `/readyz` says it can reach its database."""

from __future__ import annotations

from typing import Literal

import structlog
from fastapi import APIRouter, Request
from pydantic import BaseModel

from gateway.errors import ServiceUnavailable

router = APIRouter(tags=["operations"])
log = structlog.get_logger(__name__)


class HealthStatus(BaseModel):
    status: Literal["ok"]
    force: str


@router.get("/healthz", response_model=HealthStatus, summary="The process is alive")
async def healthz(request: Request) -> HealthStatus:
    return HealthStatus(status="ok", force=request.app.state.settings.force_code)


@router.get(
    "/readyz",
    response_model=HealthStatus,
    summary="The node can serve: its database answers",
    responses={503: {"description": "Not ready", "content": {"application/problem+json": {}}}},
)
async def readyz(request: Request) -> HealthStatus:
    try:
        await request.app.state.node.db.ping()
    except Exception as exc:
        log.warning("readiness.failed", error_type=type(exc).__name__)
        raise ServiceUnavailable("The node's database is not reachable.") from exc
    return HealthStatus(status="ok", force=request.app.state.settings.force_code)
