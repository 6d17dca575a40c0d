"""Fixtures for the auditor console: a node with seeded audit entries, the console mounted, and a
helper that signs in through the built-in issuer's development page (authorization code + PKCE)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from audit.checkpoint import VerifierKey, cosign
from audit.entry import Actor, RecordRef, SecurityEvent
from gateway.app import create_app
from gateway.console import install_console
from gateway.db import Database
from gateway.federation.manifest import Manifest, Member, authority_public_jwk, sign_manifest
from gateway.federation.members import witness_name
from gateway.federation.tables import CosignatureRow
from gateway.identity.issuer import ensure_issuer_key
from gateway.identity.signing import NodeSigningKey, load_signing_key_file
from gateway.node import init_node, open_audit_store, open_node
from gateway.settings import Settings
from schemas.enums import S62Operation
from tests.gateway.conftest import make_settings

FORCE = "20"
PHONE_SEARCHED = "07700 900123"  # what the analyst typed
PHONE_ASKED = "+44 7700 900123"  # how the auditor writes the same number


def build_console_app(settings: Settings) -> FastAPI:
    """The node's app with the console and the built-in issuer's pages, as the lead will wire it
    (mounting only what `create_app` does not already have)."""
    app = create_app(settings)
    paths = {getattr(route, "path", None) for route in app.routes}
    if "/.well-known/openid-configuration" not in paths:
        from gateway.identity.issuer_endpoints import router as issuer_router

        app.include_router(issuer_router)
    if "/oauth/authorize" not in paths:
        from gateway.identity.issuer_login import router as login_router

        app.include_router(login_router)
    if not any(path and path.startswith("/console") for path in paths):
        install_console(app, settings)
    return app


@dataclass(frozen=True)
class Seeded:
    """Indexes of the seeded entries the tests look for."""

    phone_consult: int
    own_surname: int
    partner_disclose: int
    federated: int
    no_hits: tuple[int, ...]
    witnessed_size: int = 0


async def _seed(settings: Settings) -> Seeded:
    node = await open_node(settings)
    msht = Actor(user_id="analyst.msht", force=FORCE, roles=("analyst",), vetting="SC")
    cl = Actor(user_id="analyst.cl", force=FORCE, roles=("analyst",), vetting="NPPV3")
    partner = Actor(user_id="analyst.x01", force="01", roles=("analyst",), vetting="SC")
    record = RecordRef(force=FORCE, record_id="rec-20-0001", version=1)
    try:
        audit = node.audit
        await audit.record(
            S62Operation.COLLECT, actor=Actor(client_id="rms", force=FORCE), records=[record]
        )
        phone = await audit.record(
            S62Operation.CONSULT,
            actor=msht,
            request_id="req-phone-1",
            purpose="investigation",
            case_ref="OP-KESTREL-1",
            decision="redacted:1",
            records=[record],
            sealed={
                "terms": {"phone": PHONE_SEARCHED},
                "justification": "Phone seen in an NRM referral for Op Kestrel",
            },
        )
        own = await audit.record(
            S62Operation.CONSULT,
            actor=msht,
            request_id="req-name-1",
            purpose="investigation",
            case_ref="OP-KESTREL-1",
            decision="",
            sealed={"terms": {"name": "Jo Okafor"}, "justification": "checking"},
        )
        disclose = await audit.record(
            S62Operation.DISCLOSE,
            actor=partner,
            request_id="req-local-9",
            partner_request_id="req-01-77",
            purpose="safeguarding",
            case_ref="BTP-SAFE-4",
            decision="redacted:1",
            records=[record],
            recipient_force="01",
            sealed={
                "terms": {"phone": "+447700900123"},
                "justification": "Child seen with this phone at a station",
            },
        )
        federated = await audit.record(
            SecurityEvent.SEARCH_COMPLETED,
            actor=msht,
            request_id="req-fed-2",
            purpose="investigation",
            case_ref="OP-KESTREL-1",
            decision="ok:1",
            recipient_force="01",
            receipts=[{"force": "01", "index": 41, "leaf_hash": "ab" * 32}],
            sealed={"terms": {"vrm": "AB12 CDE"}, "justification": "Vehicle on ANPR"},
        )
        no_hits = []
        for n in range(9):
            receipt = await audit.record(
                S62Operation.CONSULT,
                actor=cl,
                request_id=f"req-fish-{n}",
                purpose="prevention",
                case_ref="CL-SWEEP",
                decision="",
                sealed={"terms": {"vrm": f"XX{n:02d} ABC"}, "justification": "sweep"},
            )
            no_hits.append(receipt.index)
        # Signed now, so a browser finds a checkpoint covering the seeded entries at once.
        await asyncio.to_thread(audit.log.checkpoint)
        return Seeded(
            phone_consult=phone.index,
            own_surname=own.index,
            partner_disclose=disclose.index,
            federated=federated.index,
            no_hits=tuple(no_hits),
        )
    finally:
        await node.close()


async def _join_federation(settings: Settings) -> int:
    """A signed manifest naming this node's log key and a partner (force 01) whose node has
    cosigned this log's latest checkpoint as witness. Returns the witnessed tree size."""
    authority = Ed25519PrivateKey.generate()
    authority_jwk = authority_public_jwk(authority)
    settings.authority_key_path.write_text(json.dumps(authority_jwk))
    own_key = load_signing_key_file(settings.signing_key_file)
    witness = NodeSigningKey.from_private_key(Ed25519PrivateKey.generate())
    manifest = Manifest(
        version=1,
        issued_at=datetime.now(UTC),
        members=[
            Member(
                force_code=FORCE,
                name="Test force 20",
                node_url=settings.node_url,
                signing_keys=[own_key.public_jwk()],
                log_key=VerifierKey(settings.log_origin, 0x01, own_key.public_key).to_text(),
            ),
            Member(
                force_code="01",
                name="Partner force 01",
                node_url="http://127.0.0.1:9001",
                signing_keys=[witness.public_jwk()],
            ),
        ],
    )
    settings.manifest_path.write_text(sign_manifest(manifest, authority, authority_jwk["kid"]))
    store = open_audit_store(settings)
    try:
        latest = store.latest_checkpoint()
    finally:
        store.close()
    assert latest is not None
    cosigned = cosign(latest.note, witness_name("01"), witness.private_key, int(time.time()))
    db = Database(settings.resolved_database_url)
    try:
        async with db.sessions() as session:
            session.add(
                CosignatureRow(
                    witness_force="01",
                    size=latest.size,
                    note=cosigned.to_text(),
                    collected_at=datetime.now(UTC),
                )
            )
            await session.commit()
    finally:
        await db.dispose()
    return latest.size


def seeded_node_settings(data_dir: Path, node_url: str) -> tuple[Settings, Seeded]:
    settings = make_settings(data_dir, force_code=FORCE, node_url=node_url)
    init_node(settings)
    ensure_issuer_key(settings)
    seeded = asyncio.run(_seed(settings))
    size = asyncio.run(_join_federation(settings))
    return settings, replace(seeded, witnessed_size=size)


_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def sign_in(http: TestClient, user_id: str, *, start: str = "/console/") -> Any:
    """Walk the sign-in: console → issuer page → pick a demo user → callback → console."""
    page = http.get(start)
    assert page.status_code == 200, page.text
    assert "Choose a demo user" in page.text
    form = {name: unescape(value) for name, value in _HIDDEN.findall(page.text)}
    form["user_id"] = user_id
    return http.post("/oauth/authorize", data=form)


@pytest.fixture
def console_http(tmp_path: Path) -> Iterator[tuple[TestClient, Settings, Seeded]]:
    node_url = "http://127.0.0.1:8020"
    settings, seeded = seeded_node_settings(tmp_path / "node", node_url)
    app = build_console_app(settings)
    with TestClient(app, base_url=node_url, raise_server_exceptions=False) as http:
        yield http, settings, seeded


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServedNode:
    url: str
    settings: Settings
    seeded: Seeded


@pytest.fixture(scope="module")
def served_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
    """The node served by uvicorn on a free loopback port, for a real browser."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings, seeded = seeded_node_settings(tmp_path_factory.mktemp("console") / "node", url)
    app = build_console_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    # Start-up readiness, not a test assertion: uvicorn sets `started` once it listens.
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the node did not start")
        time.sleep(0.05)
    try:
        yield ServedNode(url=url, settings=settings, seeded=seeded)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
