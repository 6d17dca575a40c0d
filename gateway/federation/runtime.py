"""The federation's per-process state and background work, attached to the FastAPI app.

`start_federation_tasks(app)` (called by the lifespan after the node is open) creates the
partner client, the replay cache and the periodic round of cosignature collection and pruning of
seen partner checkpoints (`federation_round`);
`stop_federation_tasks(app)` ends them. Endpoints reach the state through `get_federation`, which
creates it on first use if the lifespan did not (no background tasks then).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import httpx
import structlog
from fastapi import FastAPI, Request

from gateway.federation.client import PartnerClient
from gateway.federation.protocol import ReplayCache
from gateway.node import Node

log = structlog.get_logger(__name__)

DEFAULT_COSIGN_INTERVAL_SECONDS = 10.0


@dataclass
class FederationRuntime:
    client: PartnerClient
    replay: ReplayCache = field(default_factory=ReplayCache)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _node_of(app: FastAPI) -> Node:
    node: Node | None = getattr(app.state, "node", None)
    if node is None:
        raise RuntimeError("the node is not open")
    return node


def ensure_federation(
    app: FastAPI, *, transport: httpx.AsyncBaseTransport | None = None
) -> FederationRuntime:
    runtime: FederationRuntime | None = getattr(app.state, "federation", None)
    if runtime is None or runtime.client.node is not _node_of(app):
        runtime = FederationRuntime(client=PartnerClient(_node_of(app), transport=transport))
        app.state.federation = runtime
    return runtime


async def get_federation(request: Request) -> FederationRuntime:
    # async so that FastAPI calls it on the loop rather than through its thread pool.
    return ensure_federation(request.app)


async def federation_round(app: FastAPI) -> None:
    """One round of the background work: ask partners to cosign this node's latest checkpoint,
    then forget seen partner checkpoints past their retention (`prune_seen_checkpoints`). Either
    failing is logged by error type and leaves the other, and the loop, running."""
    from gateway.federation.witness import collect_cosignatures, prune_seen_checkpoints

    # asyncio.CancelledError is not an Exception: cancelling the task still ends the loop.
    try:
        node = _node_of(app)
        results = await collect_cosignatures(node, ensure_federation(app).client)
        for result in results:
            if result.error:
                log.warning(
                    "federation.cosignature_missing", witness=result.witness, error=result.error
                )
    except Exception as exc:
        log.warning("federation.cosign_round_failed", error_type=type(exc).__name__)
    try:
        pruned = await prune_seen_checkpoints(_node_of(app))
        if pruned:
            log.info("federation.seen_checkpoints_pruned", count=pruned)
    except Exception as exc:
        log.warning("federation.seen_checkpoints_prune_failed", error_type=type(exc).__name__)


async def _collect_forever(app: FastAPI, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await federation_round(app)


async def start_federation_tasks(
    app: FastAPI,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    cosign_interval_seconds: float | None = DEFAULT_COSIGN_INTERVAL_SECONDS,
) -> FederationRuntime:
    """Create the federation state; run `federation_round` every interval (None: never).

    Called again with a `transport` (tests joining several in-process nodes), it replaces the
    state the lifespan created, so partner calls go through that transport."""
    if transport is not None and getattr(app.state, "federation", None) is not None:
        await stop_federation_tasks(app)
        app.state.federation = None
    runtime = ensure_federation(app, transport=transport)
    if cosign_interval_seconds:
        runtime.tasks.append(
            asyncio.create_task(_collect_forever(app, cosign_interval_seconds), name="cosign")
        )
    return runtime


async def stop_federation_tasks(app: FastAPI) -> None:
    runtime: FederationRuntime | None = getattr(app.state, "federation", None)
    if runtime is None:
        return
    for task in runtime.tasks:
        task.cancel()
    for task in runtime.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    runtime.tasks.clear()
    await runtime.client.aclose()
    app.state.federation = None
