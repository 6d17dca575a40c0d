"""Wires operations into an app: `/metrics`, request metrics and rate limits."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import Scope

from gateway.ops.metrics import NodeMetrics, RequestMetricsMiddleware, attach_node_metrics
from gateway.ops.metrics import router as metrics_router
from gateway.ops.ratelimit import RateLimitMiddleware, RateLimits
from gateway.settings import Settings

__all__ = ["attach_node_metrics", "install_operations", "rate_limits_from"]


def rate_limits_from(settings: Settings) -> RateLimits:
    return RateLimits(
        client=settings.rate_limit_client,
        analyst=settings.rate_limit_analyst,
        anonymous=settings.rate_limit_anonymous,
        partner=settings.rate_limit_partner,
    )


def _node_of(scope: Scope) -> Any:
    app = scope.get("app")
    return getattr(app.state, "node", None) if app is not None else None


def install_operations(app: FastAPI, settings: Settings) -> NodeMetrics:
    """Add `/metrics` and the operations middleware. Call where the request id already exists
    (inside `RequestIdMiddleware`) so that a 429 carries it; metrics wrap the rate limit so
    refused requests are counted too."""
    metrics = NodeMetrics()
    app.state.metrics = metrics
    app.include_router(metrics_router)
    if settings.rate_limit_enabled:
        app.add_middleware(
            RateLimitMiddleware,
            limits=rate_limits_from(settings),
            node_of=_node_of,
            on_limited=lambda caller: metrics.rate_limited.labels(caller=caller).inc(),
        )
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    return metrics
