"""End to end: three real node processes on loopback (uvicorn over real sockets)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.entry import SecurityEvent, decode_entry
from gateway.app import create_app
from gateway.federation.members import log_origin
from gateway.identity.issuer import mint_analyst_token
from gateway.identity.principals import SystemPrincipal
from gateway.node import open_audit_store, open_node
from gateway.records.service import store_records
from gateway.settings import Settings
from schemas import parse_record
from schemas.enums import S62Operation
from tests.federation.conftest import member_for, node_settings, phone, write_manifest

NUMBER = "+447911123456"
FORCES = ("05", "20", "01")
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GATEWAY_ENVIRONMENT": "test",
            "GATEWAY_FORCE_CODE": settings.force_code,
            "GATEWAY_NODE_URL": settings.node_url,
            "GATEWAY_DATA_DIR": str(settings.data_dir),
            "GATEWAY_AUDITOR_TOKEN": settings.auditor_token.get_secret_value(),
            "GATEWAY_CHECKPOINT_INTERVAL_SECONDS": "0.2",
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
    )
    return env


def serve_command(port: int) -> list[str]:
    probe = create_app(Settings(environment="development"))
    mounted = any(getattr(r, "path", "") == "/federation/v1/search" for r in probe.routes)
    if mounted:
        return [sys.executable, "-m", "gateway", "serve", "--port", str(port)]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "tests.federation.node_app:create",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    # Bounded readiness poll: the node answers /readyz once its lifespan has opened everything.
    for _ in range(400):
        if process.poll() is not None:
            raise AssertionError(f"node at {url} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"node at {url} did not become ready")


def load(settings: Settings, records: list[dict[str, Any]]) -> None:
    async def run() -> None:
        node = await open_node(settings)
        try:
            async with node.db.sessions() as session:
                await store_records(
                    session=session,
                    keys=node.keys,
                    audit=node.audit,
                    principal=SystemPrincipal("loader", settings.force_code, frozenset()),
                    records=[parse_record(r).model_dump(mode="json") for r in records],
                    request_id=None,
                )
                await session.commit()
        finally:
            await node.close()

    asyncio.run(run())


def entries(settings: Settings) -> list[Any]:
    store = open_audit_store(settings)
    try:
        return [decode_entry(raw) for raw in store.read_entries(0, store.size())]
    finally:
        store.close()


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[dict[str, Settings]]:
    ports = {force: free_port() for force in FORCES}
    settings = {
        f: node_settings(tmp_path, f, node_url=f"http://127.0.0.1:{ports[f]}") for f in FORCES
    }
    write_manifest(list(settings.values()), [member_for(s) for s in settings.values()])
    load(settings["20"], [phone("20", "ph-20-1", "07911 123456")])
    load(settings["01"], [phone("01", "ph-01-1", NUMBER)])
    load(settings["05"], [phone("05", "ph-05-1", NUMBER)])
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for force, s in settings.items():
            processes[force] = subprocess.Popen(
                serve_command(ports[force]),
                env=env_for(s),
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for force, s in settings.items():
            wait_ready(s.node_url, processes[force])
        yield settings
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_three_node_processes_search_disclose_and_reconcile(
    federation: dict[str, Settings],
) -> None:
    s05 = federation["05"]
    token = mint_analyst_token(s05, user_id="analyst-05", roles=["analyst"], vetting="NPPV2")
    headers = {"Authorization": f"Bearer {token}"}
    ask = {"purpose": "investigation", "justification": "Op Kestrel", "case_ref": "OP-K-1"}
    with httpx.Client(base_url=s05.node_url, headers=headers, timeout=10) as http:
        hits = http.post("/v1/search", json={**ask, "mode": "hits", "phone": NUMBER})
        assert hits.status_code == 200, hits.text
        results = {r["force"]: r for r in hits.json()["results"]}
        assert {f: r["status"] for f, r in results.items()} == dict.fromkeys(FORCES, "ok")
        assert results["20"]["hit_count"] == 1
        ref = results["20"]["hits"][0]["record_id"]
        # Step 2: one record from force 20, as its policy allows.
        shown = http.post(f"/v1/records/20/{ref}/disclose", json=ask)
        assert shown.status_code == 200, shown.text
        assert shown.json()["status"] == "ok"
        assert shown.json()["record"]["body"]["number"] == NUMBER
        records = http.post("/v1/search", json={**ask, "mode": "records", "phone": NUMBER})
        groups = {g["key"]: g["forces"] for g in records.json()["groups"]}
        # Force 01 shares pointers only, so the phone is grouped across 05's and 20's records.
        assert groups[f"phone:{NUMBER}"] == ["05", "20"]

    # Reconcile from node 05 while its partners still run (05 itself stopped first: one writer).
    reconcile = subprocess.run(
        [
            sys.executable,
            "-c",
            "import typer; from gateway.federation.reconcile import reconcile_command; "
            "typer.run(reconcile_command)",
        ],
        env=env_for(s05),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    assert "reconcile passed" in reconcile.stdout

    # Both sides logged: 20 the disclosures to 05, 05 the queries and 20's receipts.
    disclosed = [e for e in entries(federation["20"]) if e.kind == S62Operation.DISCLOSE]
    assert [e.recipient_force for e in disclosed] == ["05", "05", "05"]
    mine = entries(s05)
    receipts = [r for e in mine if e.kind == SecurityEvent.SEARCH_COMPLETED for r in e.receipts]
    from20 = [r for r in receipts if r["force"] == "20"]
    assert len(from20) == 3
    assert all(r["origin"] == log_origin("20") for r in from20)
