"""The FastAPI application factory: `create_app(settings)` wires one force node together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from gateway.audit_api.endpoints import router as audit_router
from gateway.console import install_console
from gateway.errors import install_error_handlers
from gateway.federation.endpoints import router as federation_router
from gateway.federation.runtime import start_federation_tasks, stop_federation_tasks
from gateway.health.endpoints import router as health_router
from gateway.identity.endpoints import router as identity_router
from gateway.identity.issuer_endpoints import router as issuer_router
from gateway.identity.issuer_login import router as issuer_login_router
from gateway.logging import configure_logging
from gateway.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from gateway.node import open_node
from gateway.ops.install import attach_node_metrics, install_operations
from gateway.policy_reload import start_policy_watcher, stop_policy_watcher
from gateway.records.endpoints import router as records_router
from gateway.records.index_versions import start_index_watcher
from gateway.records.service import freeze_startup_heap
from gateway.search.endpoints import router as search_router
from gateway.security_headers import SecurityHeadersMiddleware
from gateway.settings import Settings

log = structlog.get_logger(__name__)

BULK_PATH = "/v1/records/bulk"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(json_lines=settings.json_logs, level=settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        node = await open_node(settings)
        app.state.node = node
        app.state.db = node.db
        attach_node_metrics(node, app.state.metrics)
        await start_federation_tasks(app)
        policy_task = start_policy_watcher(node)
        index_task = start_index_watcher(
            node.keys, node.db.sessions, settings.index_refresh_seconds
        )
        # Everything loaded so far lives as long as the process: keep full collections from
        # walking it again and again under bulk loads (gateway/records/service.py).
        freeze_startup_heap()
        log.info("node.started", force_code=settings.force_code, environment=settings.environment)
        try:
            yield
        finally:
            await stop_federation_tasks(app)
            await stop_policy_watcher(policy_task)
            index_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await index_task
            app.state.node = None
            # Stops taking audit entries only after in-flight requests are done (uvicorn drains
            # them before the lifespan ends); the writer flushes and signs a final checkpoint.
            await node.close()
            log.info("node.stopped", force_code=settings.force_code)

    app = FastAPI(
        title=f"Police data-sharing gateway — force {settings.force_code}",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(identity_router)
    app.include_router(records_router)
    app.include_router(audit_router)
    app.include_router(search_router)
    app.include_router(federation_router)
    if settings.builtin_issuer_enabled:
        app.include_router(issuer_router)
        app.include_router(issuer_login_router)
    install_console(app, settings)

    def limit_for(path: str) -> int:
        return settings.max_bulk_bytes if path == BULK_PATH else settings.max_body_bytes

    # Outermost first: the request id exists before the size check answers.
    app.add_middleware(BodySizeLimitMiddleware, limit_for=limit_for)
    install_operations(app, settings)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: covers every answer
    return app
