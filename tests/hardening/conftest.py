"""Shared fixtures for the hardening tests (bad input, hygiene, faults, crashes)."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from audit.entry import decode_entry
from gateway.identity.signing import NodeSigningKey, load_signing_key_file
from gateway.node import open_node
from gateway.node_offline import verify_local_log
from gateway.search.service import _load
from gateway.settings import Settings
from schemas.enums import S62Operation
from tests.federation.conftest import member_for, node_settings, write_manifest

# Loopback: the token endpoint refuses plain http elsewhere. Port 1 refuses connections at once,
# so the partner is "unreachable" without waiting on a deadline.
HOME_URL = "http://127.0.0.1:8020"
PARTNER_URL = "http://127.0.0.1:1"


@dataclass
class FederatedNode:
    """One node (force 20) whose manifest also lists partner 05, whose signing key tests hold."""

    settings: Settings
    partner: Settings
    partner_key: NodeSigningKey


def federated_node(base: Path, **overrides: object) -> FederatedNode:
    home = node_settings(base, "20", node_url=HOME_URL, **overrides)
    partner = node_settings(base, "05", node_url=PARTNER_URL)
    write_manifest([home], [member_for(home), member_for(partner)])
    return FederatedNode(home, partner, load_signing_key_file(partner.signing_key_file))


# --- faults and crashes (helper "hardening-faults") ----------------------------------------------

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@contextmanager
def small_disk(mount_point: Path, size_mb: int) -> Iterator[Path]:
    """A private tmpfs of `size_mb`, so a test can fill it (disk full) and free it again.

    Needs root (CI and these machines run as root); elsewhere the test skips, and under CI a
    missing mount is a failure rather than a silent skip."""
    mount_point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs (needs root): {done.stderr.strip()}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def fill_disk(directory: Path) -> Path:
    """Write a filler file until the filesystem refuses another byte; delete it to recover."""
    filler = directory / "filler.bin"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as handle:
        for size in (65536, 4096, 512, 1):
            piece = block[:size]
            while True:
                try:
                    handle.write(piece)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return filler


def verify_audit_log(settings: Settings) -> int:
    """Verify a stopped node's audit log offline; returns its size.

    The tree is recomputed from the stored entries and checked against a freshly signed head,
    which must also be consistent with the last checkpoint the node itself signed: an entry
    acknowledged before a crash cannot have been lost or rewritten since."""
    report = verify_local_log(settings)
    assert report.ok, f"audit log does not verify: {report.problem} {report.detail}"
    return int(report.entries)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        # Fields after the command name, which is in parentheses and may hold spaces.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def still_running(pids: list[int], timeout: float) -> list[int]:
    """Those of `pids` that have not ended within `timeout` seconds (waited on through pidfds,
    so processes that are not this one's children can be waited for)."""
    handles = {}
    for pid in pids:
        try:
            handles[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            continue  # already gone
    deadline = time.monotonic() + timeout
    try:
        while handles:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(list(handles), [], [], left)
            for fd in ready:
                os.close(fd)
                del handles[fd]
        return sorted(handles.values())
    finally:
        for fd in handles:
            os.close(fd)


def node_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `gateway` subprocess needs to act as this node."""
    env = dict(os.environ)
    env.update(
        {
            "GATEWAY_ENVIRONMENT": "test",
            "GATEWAY_FORCE_CODE": settings.force_code,
            "GATEWAY_NODE_URL": settings.node_url,
            "GATEWAY_DATA_DIR": str(settings.data_dir),
            "GATEWAY_AUDITOR_TOKEN": settings.auditor_token.get_secret_value(),
            "GATEWAY_CHECKPOINT_INTERVAL_SECONDS": str(settings.checkpoint_interval_seconds),
            "GATEWAY_RATE_LIMIT_ENABLED": "false",
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


class NodeProcess:
    """`gateway serve` in its own process, so a test can kill -9 it at any moment."""

    def __init__(self, settings: Settings, port: int, **env: str) -> None:
        self.settings = settings
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = node_env(settings, **env)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Bounded readiness poll: /readyz answers once the lifespan has opened the node.
        for _ in range(600):
            if self.process.poll() is not None:
                raise AssertionError(f"the node exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise AssertionError("the node did not become ready")

    def kill(self) -> None:
        """SIGKILL: no lifespan shutdown, no final checkpoint, no flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def token(self, client_id: str, secret: str) -> str:
        response = httpx.post(
            f"{self.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@dataclass
class StoreState:
    """What a stopped node holds, after checking that every record in it is whole."""

    versions: dict[str, int]
    kek_versions: dict[str, int]
    audited: set[str]


def check_store(settings: Settings, prefix: str = "") -> StoreState:
    """Open the stopped node and prove every stored record whole: its data key is there, it
    decrypts, it has blind-index terms, its change is in the feed and its write was audited.
    `prefix` limits the decryption check to the records whose id starts with it."""

    async def run() -> StoreState:
        node = await open_node(settings)
        try:
            async with node.db.sessions() as session:
                ids = [
                    r
                    for (r,) in await session.execute(
                        text("SELECT record_id FROM records WHERE record_id LIKE :p"),
                        {"p": prefix + "%"},
                    )
                ]
                keyed = dict(
                    (await session.execute(text("SELECT record_id, kek_version FROM data_keys")))
                    .tuples()
                    .all()
                )
                indexed = {
                    r for (r,) in await session.execute(text("SELECT record_id FROM search_terms"))
                }
                fed = {r for (r,) in await session.execute(text("SELECT record_id FROM changes"))}
            assert set(ids) <= set(keyed), "a record without its data key"
            assert set(ids) <= indexed, "a record without blind-index terms"
            assert set(ids) <= fed, "a record missing from the change feed"
            versions: dict[str, int] = {}
            for start in range(0, len(ids), 500):
                for row, record in await _load(node, ids[start : start + 500]):
                    assert record["id"] == row.record_id
                    versions[row.record_id] = int(row.version)
            assert len(versions) == len(ids), "a stored record did not decrypt"
            log = node.audit.log
            audited: set[str] = set()
            for raw in log.entries(0, log.size()):
                entry = decode_entry(raw)
                if entry.kind in (S62Operation.COLLECT, S62Operation.ALTER):
                    audited.update(ref.record_id for ref in entry.records)
            assert set(ids) <= audited, "a stored record whose collection was never audited"
            kek_versions: dict[str, int] = {}
            for version in keyed.values():
                kek_versions[version] = kek_versions.get(version, 0) + 1
            return StoreState(versions=versions, kek_versions=kek_versions, audited=audited)
        finally:
            await node.close()

    return asyncio.run(run())
