"""`gateway up`: a local federation of force nodes on loopback, for evaluation and the demo.

On first run, for each force: keys, database and audit store (`init_node`), a built-in token
issuer, a registered force-system client; then one federation authority key and a signed
manifest listing every node; then synthetic data imported through each node's sync API. Later
runs reuse all of it (state in WORKDIR/federation.json). Each node runs as its own process
(`gateway serve`); stopping the federation stops them all.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.settings import Settings

BASE_PORT = 8100
AUDITOR_TOKEN = "demo-auditor-" + "0" * 24  # development only; the settings refuse it elsewhere


@dataclass
class NodeSpec:
    force: str
    port: int
    data_dir: Path
    client_id: str = ""
    client_secret: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, workdir: Path) -> dict[str, str]:
        return {
            "GATEWAY_ENVIRONMENT": "development",
            "GATEWAY_FORCE_CODE": self.force,
            "GATEWAY_NODE_URL": self.url,
            "GATEWAY_DATA_DIR": str(self.data_dir),
            "GATEWAY_MANIFEST_FILE": str(workdir / "manifest.jws"),
            "GATEWAY_AUTHORITY_KEY_FILE": str(workdir / "authority.pub.jwk"),
            "GATEWAY_AUDITOR_TOKEN": AUDITOR_TOKEN,
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_CHECKPOINT_INTERVAL_SECONDS": "0.5",
        }

    def settings(self, workdir: Path) -> Settings:
        values: dict[str, Any] = {
            k.removeprefix("GATEWAY_").lower(): v for k, v in self.env(workdir).items()
        }
        return Settings.model_validate(values)


@dataclass
class Federation:
    workdir: Path
    nodes: list[NodeSpec]

    def node(self, force: str) -> NodeSpec:
        return next(n for n in self.nodes if n.force == force)

    def save(self) -> None:
        state = {
            "nodes": [
                {
                    "force": n.force,
                    "port": n.port,
                    "data_dir": str(n.data_dir),
                    "client_id": n.client_id,
                    "client_secret": n.client_secret,
                }
                for n in self.nodes
            ]
        }
        path = self.workdir / "federation.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2)

    @classmethod
    def load(cls, workdir: Path) -> Federation | None:
        path = workdir / "federation.json"
        if not path.exists():
            return None
        state = json.loads(path.read_text(encoding="utf-8"))
        nodes = [
            NodeSpec(
                force=n["force"],
                port=int(n["port"]),
                data_dir=Path(n["data_dir"]),
                client_id=n["client_id"],
                client_secret=n["client_secret"],
            )
            for n in state["nodes"]
        ]
        return cls(workdir=workdir, nodes=nodes)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int, start: int) -> list[int]:
    ports: list[int] = []
    port = start
    while len(ports) < count:
        if _port_free(port):
            ports.append(port)
        port += 1
    return ports


def _register_client(settings: Settings, name: str) -> tuple[str, str]:
    import asyncio

    from gateway.db import Database
    from gateway.identity.clients import add_client

    async def _add() -> tuple[str, str]:
        db = Database(settings.resolved_database_url)
        try:
            async with db.sessions() as session:
                new = await add_client(
                    session=session, name=name, scopes=["records:write", "records:read"]
                )
                await session.commit()
                return new.client_id, new.secret
        finally:
            await db.dispose()

    return asyncio.run(_add())


def _write_manifest(fed: Federation) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.checkpoint import VerifierKey
    from gateway.federation.manifest import (
        Manifest,
        Member,
        TrustedIssuer,
        authority_public_jwk,
        sign_manifest,
        write_manifest_file,
    )
    from gateway.identity.issuer import issuer_jwks
    from gateway.identity.signing import load_signing_key_file
    from schemas.forces import get_force

    key_path = fed.workdir / "authority.pem"
    if key_path.exists():
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(loaded, Ed25519PrivateKey)
        authority = loaded
    else:
        authority = Ed25519PrivateKey.generate()
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(
                authority.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
    public = authority_public_jwk(authority)
    (fed.workdir / "authority.pub.jwk").write_text(json.dumps(public), encoding="utf-8")
    members = []
    for spec in fed.nodes:
        settings = spec.settings(fed.workdir)
        signing = load_signing_key_file(settings.signing_key_file)
        members.append(
            Member(
                force_code=spec.force,
                name=get_force(spec.force).name,
                node_url=spec.url,
                signing_keys=[signing.public_jwk()],
                issuers=[
                    TrustedIssuer(issuer=spec.url, audience=spec.url, jwks=issuer_jwks(settings))
                ],
                status="active",
                contact=f"Intelligence bureau, {get_force(spec.force).name}",
                log_key=VerifierKey(settings.log_origin, 0x01, signing.public_key).to_text(),
            )
        )
    manifest = Manifest(version=1, issued_at=datetime.now(UTC), members=members)
    write_manifest_file(
        fed.workdir / "manifest.jws", sign_manifest(manifest, authority, str(public["kid"]))
    )


def prepare(
    workdir: Path, forces: list[str], records: int, *, seed: int = 7, log: Any = print
) -> Federation:
    """Initialise (or reuse) the local federation's nodes, manifest and data."""
    workdir = workdir.resolve()
    existing = Federation.load(workdir)
    if existing is not None and sorted(n.force for n in existing.nodes) == sorted(forces):
        return existing
    from gateway.identity.issuer import ensure_issuer_key
    from gateway.node import init_node

    workdir.mkdir(parents=True, exist_ok=True)
    ports = _free_ports(len(forces), BASE_PORT)
    fed = Federation(
        workdir=workdir,
        nodes=[
            NodeSpec(force=f, port=p, data_dir=workdir / f"force-{f}")
            for f, p in zip(forces, ports, strict=True)
        ],
    )
    for spec in fed.nodes:
        settings = spec.settings(workdir)
        init_node(settings)
        ensure_issuer_key(settings)
        spec.client_id, spec.client_secret = _register_client(settings, "demo-rms")
        log(f"initialised node for force {spec.force} in {spec.data_dir}")
    _write_manifest(fed)
    log("signed the federation manifest")
    from gateway.synth import generate

    data = workdir / "synthetic"
    summary = generate(forces, records, seed, data)
    log(
        f"generated {summary.total_records} synthetic records "
        f"with {sum(summary.planted_links.values())} planted cross-force links"
    )
    fed.save()
    return fed


def import_data(fed: Federation, log: Any = print) -> None:
    from gateway.records.importer import import_over_http

    marker = fed.workdir / "imported"
    if marker.exists():
        return
    for spec in fed.nodes:
        path = fed.workdir / "synthetic" / f"{spec.force}.ndjson"
        summary = import_over_http(
            path, url=spec.url, client_id=spec.client_id, secret=spec.client_secret
        )
        log(
            f"force {spec.force}: imported {summary.accepted} records through the sync API "
            f"({summary.per_second:,.0f}/s, {summary.rejected} rejected)"
        )
    marker.write_text("done", encoding="utf-8")


class Processes:
    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, force: str) -> None:
        spec = self.fed.node(force)
        env = {**os.environ, **spec.env(self.fed.workdir)}
        log_file = (spec.data_dir / "node.log").open("ab")
        self.procs[force] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "gateway", "serve", "--port", str(spec.port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, force: str, timeout: float = 60.0) -> None:
        spec = self.fed.node(force)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                proc = self.procs.get(force)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(
                        f"node {force} exited with code {proc.returncode}; "
                        f"see {spec.data_dir / 'node.log'}"
                    )
                try:
                    if client.get(f"{spec.url}/readyz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"node {force} was not ready within {timeout:.0f} s")

    def stop(self, force: str) -> None:
        proc = self.procs.pop(force, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for force in list(self.procs):
            self.stop(force)


@contextmanager
def running(fed: Federation) -> Iterator[Processes]:
    procs = Processes(fed)
    try:
        for spec in fed.nodes:
            procs.start(spec.force)
        for spec in fed.nodes:
            procs.wait_ready(spec.force)
        yield procs
    finally:
        procs.stop_all()
