"""Several real nodes in one process, joined by a signed manifest and httpx ASGI transports.

Each node has its own data directory, keys, database and audit log. Partners that misbehave
(down, slow, 500, garbage, bad signature, wrong request hash) are small ASGI apps or transports
routed by host name.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from gateway.app import create_app
from gateway.federation.manifest import (
    Manifest,
    Member,
    authority_public_jwk,
    sign_manifest,
)
from gateway.federation.runtime import start_federation_tasks, stop_federation_tasks
from gateway.identity.issuer import ensure_issuer_key, mint_analyst_token
from gateway.identity.principals import SystemPrincipal
from gateway.identity.signing import NodeSigningKey, load_signing_key_file
from gateway.node import Node, init_node
from gateway.records.service import store_records
from gateway.settings import Settings
from schemas import parse_record
from schemas.examples import example_record
from tests.gateway.conftest import make_settings, register_client

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def url_of(force: str) -> str:
    return f"http://force-{force}.test"


def install_routers(app: FastAPI) -> None:
    """Mount the federation and analyst routers unless the app factory already does."""
    from gateway.federation.endpoints import router as federation_router
    from gateway.search.endpoints import router as search_router

    paths = {getattr(r, "path", None) for r in app.routes}
    if "/federation/v1/search" not in paths:
        app.include_router(federation_router)
    if "/v1/search" not in paths:
        app.include_router(search_router)


def node_settings(tmp_path: Path, force: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"force_code": force, "node_url": url_of(force)}
    values.update(overrides)
    settings = make_settings(tmp_path / f"node-{force}", **values)
    init_node(settings)
    ensure_issuer_key(settings)
    return settings


def member_for(settings: Settings, *, status: str = "active", url: str | None = None) -> Member:
    key = load_signing_key_file(settings.signing_key_file)
    return Member(
        force_code=settings.force_code,
        name=f"Force {settings.force_code}",
        node_url=url or settings.node_url,
        signing_keys=[key.public_jwk()],
        status=status,  # type: ignore[arg-type]
        contact=f"intel-bureau@force-{settings.force_code}.test",
    )


def stranger_member(force: str) -> Member:
    """A member whose node is one of the misbehaving test partners."""
    key = NodeSigningKey.generate()
    return Member(
        force_code=force,
        name=f"Force {force}",
        node_url=url_of(force),
        signing_keys=[key.public_jwk()],
    )


def write_manifest(settings_list: list[Settings], members: list[Member], version: int = 1) -> None:
    authority = Ed25519PrivateKey.generate()
    public = authority_public_jwk(authority)
    manifest = Manifest(version=version, issued_at=datetime.now(UTC), members=members)
    signed = sign_manifest(manifest, authority, str(public["kid"]))
    for settings in settings_list:
        settings.authority_key_path.write_text(json.dumps(public), encoding="utf-8")
        settings.manifest_path.write_text(signed, encoding="utf-8")


class RoutingTransport(httpx.AsyncBaseTransport):
    """Sends each request to the transport registered for its host."""

    def __init__(self) -> None:
        self.routes: dict[str, httpx.AsyncBaseTransport] = {}

    def add(self, url: str, transport: httpx.AsyncBaseTransport) -> None:
        self.routes[httpx.URL(url).host] = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.routes.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError("connection refused", request=request)
        return await transport.handle_async_request(request)


class HandlerTransport(httpx.AsyncBaseTransport):
    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.handler(request)


@dataclass
class RunningNode:
    force: str
    app: FastAPI
    settings: Settings
    client_id: str
    secret: str
    http: httpx.AsyncClient

    @property
    def node(self) -> Node:
        node: Node = self.app.state.node
        return node

    def analyst_token(
        self, *, roles: tuple[str, ...] = ("analyst",), vetting: str = "NPPV2"
    ) -> str:
        return mint_analyst_token(
            self.settings, user_id=f"analyst-{self.force}", roles=roles, vetting=vetting
        )

    def analyst_headers(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.analyst_token(**kwargs)}"}

    async def load(self, records: list[dict[str, Any]]) -> None:
        """Store records as the force's own system would (validation, encryption, audit)."""
        node = self.node
        principal = SystemPrincipal(
            client_id=self.client_id, force=self.force, scopes=frozenset({"records:write"})
        )
        async with node.db.sessions() as session:
            await store_records(
                session=session,
                keys=node.keys,
                audit=node.audit,
                principal=principal,
                records=[parse_record(r).model_dump(mode="json") for r in records],
                request_id=None,
            )
            await session.commit()

    async def search(self, **body: Any) -> httpx.Response:
        payload = {
            "purpose": "investigation",
            "justification": "Operation Kestrel: linked county line",
            "case_ref": "OP-KESTREL-1",
            **body,
        }
        return await self.http.post("/v1/search", json=payload, headers=self.analyst_headers())


@dataclass
class Federation:
    nodes: dict[str, RunningNode]
    routing: RoutingTransport
    extra: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def running_federation(
    settings_list: list[Settings],
    *,
    routing: RoutingTransport | None = None,
) -> AsyncIterator[Federation]:
    """Start every node's app (lifespan included) and route partner calls between them."""
    routing = routing or RoutingTransport()
    clients = {s.force_code: register_client_async(s) for s in settings_list}
    nodes: dict[str, RunningNode] = {}
    async with AsyncExitStack() as stack:
        for settings in settings_list:
            app = create_app(settings)
            install_routers(app)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            routing.add(settings.node_url, transport)
            # Loopback name: the token endpoint (Authlib) refuses plain http to other hosts.
            http = httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1:8000", timeout=30
            )
            stack.push_async_callback(http.aclose)
            client_id, secret = await clients[settings.force_code]
            nodes[settings.force_code] = RunningNode(
                settings.force_code, app, settings, client_id, secret, http
            )
        for running in nodes.values():
            await start_federation_tasks(
                running.app, transport=routing, cosign_interval_seconds=None
            )
            stack.push_async_callback(stop_federation_tasks, running.app)
        yield Federation(nodes=nodes, routing=routing)


async def register_client_async(settings: Settings) -> tuple[str, str]:
    return await asyncio.to_thread(
        register_client, settings, "rms", ["records:write", "records:read"]
    )


def person(force: str, record_id: str, given: str, family: str, dob: str) -> dict[str, Any]:
    record = example_record("person", id=record_id, owner_force=force)
    record["body"]["names"] = [
        {"name_type": "primary", "given_names": given, "family_name": family}
    ]
    record["body"]["date_of_birth"] = dob
    return record


def phone(force: str, record_id: str, number: str) -> dict[str, Any]:
    record = example_record("phone", id=record_id, owner_force=force)
    record["body"]["number"] = number
    return record
