"""Prometheus metrics for one node: what `/metrics` exposes and the hooks services call.

Each app gets its own `CollectorRegistry` (several nodes run in one test process). Label values
are only ever route templates, force codes, statuses and policy outcomes: never a raw path, a
record id, a user id or a search term, so no personal data can reach the metrics store.

Services reach the metrics through `metrics_of(node)`, which answers a do-nothing stand-in when
the node runs without an app (CLI, offline tools), so a hook is always one line.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from sqlalchemy import func, select
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audit.log import Receipt
from gateway.records.tables import DataKeyRow, NodeSecretRow

log = structlog.get_logger(__name__)

METRICS_PATH = "/metrics"
UNMATCHED_ROUTE = "unmatched"
_NODE_ATTRIBUTE = "_ops_metrics"
_TEMPLATES = "ops_route_templates"
_VERSION_NUMBER = re.compile(r"^v(\d+)$")
# Request latency buckets: the API answers in milliseconds, bulk uploads take seconds.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
# Group commit makes a lone append cost one fsync (~1-10 ms); queues under load cost more.
_AUDIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class NodeMetrics:
    """The metric families of one node, registered in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        self.requests = Counter(
            "gateway_http_requests",
            "HTTP requests answered, per route template, method and status code",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer an HTTP request, per route template and method",
            ["route", "method"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.federation_calls = Counter(
            "gateway_federation_calls",
            "Calls this node made to partner nodes, per partner force, operation and status",
            ["partner", "operation", "status"],
            registry=r,
        )
        self.policy_decisions = Counter(
            "gateway_policy_decisions",
            "Policy decisions on records, per outcome (full, redacted, pointer, hidden, denied)",
            ["outcome"],
            registry=r,
        )
        self.search_truncations = Counter(
            "gateway_search_candidates_truncated",
            "Local searches (own analysts' or partners') that found more candidate records than "
            "one search examines, and were answered as truncated",
            registry=r,
        )
        self.audit_append_seconds = Histogram(
            "gateway_audit_append_duration_seconds",
            "Time until an audit entry is durable (group commit included)",
            buckets=_AUDIT_BUCKETS,
            registry=r,
        )
        self.audit_append_failures = Counter(
            "gateway_audit_append_failures",
            "Audit appends that did not become durable (the request disclosed nothing)",
            registry=r,
        )
        self.audit_log_size = Gauge(
            "gateway_audit_log_entries", "Entries in this node's audit log", registry=r
        )
        self.kek_version = Gauge(
            "gateway_kek_current_version",
            "Number of the current key encryption key version (v3 -> 3)",
            registry=r,
        )
        self.kek_old_keys = Gauge(
            "gateway_kek_keys_on_old_versions",
            "Wrapped data keys and node secrets not yet re-wrapped under the current KEK version",
            registry=r,
        )
        self.kept_decisions = Gauge(
            "gateway_policy_kept_decisions",
            "Policy decisions kept across requests (policies.SharedDecisions)",
            registry=r,
        )
        self.kept_decision_lookups = Gauge(
            "gateway_policy_kept_decision_lookups",
            "Lookups of kept policy decisions since the node started, found (hit) or decided by "
            "Cedar (miss); read from the engine at scrape time",
            ["result"],
            registry=r,
        )
        self.remembered_tokens = Gauge(
            "gateway_analyst_tokens_remembered",
            "Analyst tokens whose signature verified, remembered for a short while",
            registry=r,
        )
        self.rate_limited = Counter(
            "gateway_rate_limited_requests",
            "Requests refused with 429, per kind of caller (client, analyst, anonymous, partner)",
            ["caller"],
            registry=r,
        )

    # -- hooks the services call ---------------------------------------------------------------

    def policy_decided(self, counts: Mapping[str, int]) -> None:
        for outcome, count in counts.items():
            if count:
                self.policy_decisions.labels(outcome=outcome).inc(count)

    def search_truncated(self) -> None:
        self.search_truncations.inc()

    def federation_called(self, *, partner: str, operation: str, status: str) -> None:
        self.federation_calls.labels(partner=partner, operation=operation, status=status).inc()

    def federation_results(self, results: Iterable[Any], *, own: str, operation: str) -> None:
        """Count every partner's status in a fan-out (objects with `force` and `status`)."""
        for result in results:
            if result.force != own:
                self.federation_called(
                    partner=str(result.force), operation=operation, status=str(result.status)
                )

    # -- state read at scrape time -------------------------------------------------------------

    def refresh_caches(self, node: Any, verifier: Any = None) -> None:
        """The kept policy decisions and the remembered analyst tokens, read at scrape time."""
        shared = node.policies.shared
        self.kept_decisions.set(len(shared))
        self.kept_decision_lookups.labels(result="hit").set(shared.hits)
        self.kept_decision_lookups.labels(result="miss").set(shared.misses)
        self.remembered_tokens.set(len(verifier.verified) if verifier is not None else 0)

    async def refresh_node_state(self, node: Any) -> None:
        """Audit log size and key rotation state, read when Prometheus scrapes."""
        try:
            size = await asyncio.to_thread(node.audit.log.size)
            self.audit_log_size.set(size)
        except Exception as exc:
            log.warning("metrics.audit_size_unavailable", error_type=type(exc).__name__)
        try:
            current = str(node.keys.kek.current_version)
            match = _VERSION_NUMBER.match(current)
            if match:
                self.kek_version.set(int(match.group(1)))
            async with node.db.sessions() as session:
                old_data_keys = (
                    await session.execute(
                        select(func.count())
                        .select_from(DataKeyRow)
                        .where(DataKeyRow.kek_version != current)  # type: ignore[arg-type]
                    )
                ).scalar_one()
                old_secrets = (
                    await session.execute(
                        select(func.count())
                        .select_from(NodeSecretRow)
                        .where(NodeSecretRow.kek_version != current)  # type: ignore[arg-type]
                    )
                ).scalar_one()
            self.kek_old_keys.set(int(old_data_keys) + int(old_secrets))
        except Exception as exc:
            log.warning("metrics.key_state_unavailable", error_type=type(exc).__name__)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _DisabledMetrics(NodeMetrics):
    """Stands in when a node runs without an app: hooks cost nothing and record nothing."""

    def __init__(self) -> None:
        pass

    def policy_decided(self, counts: Mapping[str, int]) -> None:
        return None

    def search_truncated(self) -> None:
        return None

    def federation_called(self, *, partner: str, operation: str, status: str) -> None:
        return None

    def federation_results(self, results: Iterable[Any], *, own: str, operation: str) -> None:
        return None


_DISABLED = _DisabledMetrics()


def metrics_of(node: object) -> NodeMetrics:
    """The metrics attached to this node by its app, or a stand-in that records nothing."""
    found = getattr(node, _NODE_ATTRIBUTE, None)
    return found if isinstance(found, NodeMetrics) else _DISABLED


def attach_node_metrics(node: Any, metrics: NodeMetrics) -> None:
    """Called once the node is open: make `metrics_of(node)` find the app's metrics, and time
    audit appends.

    The append is wrapped on this node's own `AuditLog` instance rather than edited in `audit/`:
    that package is a pure library that knows nothing of Prometheus.
    """
    setattr(node, _NODE_ATTRIBUTE, metrics)
    audit_log = node.audit.log
    original: Callable[..., Awaitable[Receipt]] = audit_log.append_async

    async def timed_append(entry: bytes, *, checkpoint: bool = False) -> Receipt:
        started = time.perf_counter()
        try:
            receipt = await original(entry, checkpoint=checkpoint)
        except BaseException:
            metrics.audit_append_failures.inc()
            raise
        metrics.audit_append_seconds.observe(time.perf_counter() - started)
        return receipt

    audit_log.append_async = timed_append


def route_template(scope: Scope) -> str:
    """The path template of the route that answered (`/v1/records/{record_id}`), never the raw
    path: raw paths hold record ids and would make one time series per record."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    # Answered before routing (429, 413): find the template it was meant for among the
    # documented routes, so refusals are counted under their route too.
    app = scope.get("app")
    if app is None:
        return UNMATCHED_ROUTE
    templates: list[tuple[re.Pattern[str], str]] | None = getattr(app.state, _TEMPLATES, None)
    if templates is None:
        templates = [(compile_path(p)[0], p) for p in app.openapi().get("paths", {})]
        setattr(app.state, _TEMPLATES, templates)
    raw = str(scope.get("path", ""))
    for pattern, template in templates:
        if pattern.match(raw):
            return template
    return UNMATCHED_ROUTE


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by route template, method and status."""

    def __init__(self, app: ASGIApp, *, metrics: NodeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            route = route_template(scope)
            method = str(scope.get("method", "GET"))
            self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()
            self.metrics.request_seconds.labels(route=route, method=method).observe(
                time.perf_counter() - started
            )


router = APIRouter(tags=["operations"])


@router.get(
    METRICS_PATH,
    summary="Prometheus metrics of this node",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics_endpoint(request: Request) -> Response:
    metrics: NodeMetrics = request.app.state.metrics
    node = getattr(request.app.state, "node", None)
    if node is not None:
        await metrics.refresh_node_state(node)
        metrics.refresh_caches(node, getattr(request.app.state, "analyst_verifier", None))
    return Response(content=metrics.render(), media_type=CONTENT_TYPE_LATEST)
