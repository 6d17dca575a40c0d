"""Real force nodes as child processes for the benchmarks: `gateway init`, a registered force
system and one or more `gateway serve` processes on free loopback ports, plus temporary
PostgreSQL databases and memory readings from /proc.

Benchmarks measure what an operator would run, so nodes here are started through the CLI with
GATEWAY_* environment variables exactly as docs/operator.md describes, never built in-process.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

PG_ADMIN_URL = os.environ.get("GATEWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
GATEWAY_CLI = Path(sys.executable).with_name("gateway")
READY_TIMEOUT_S = 60.0


class NodeProcessError(RuntimeError):
    """A benchmark node could not be initialised or did not become ready."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> dict[str, float]:
    """Current and peak resident set size of a process, in MB (Linux /proc; VmHWM is the peak)."""
    figures: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                figures[name] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": figures.get("VmRSS", 0.0), "peak_rss_mb": figures.get("VmHWM", 0.0)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (a node's bulk-load workers), from /proc."""
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                children += [int(c) for c in (task / "children").read_text().split()]
    return children


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def temp_postgres_database(prefix: str = "gw_bench") -> Iterator[str]:
    """A fresh database on the local server for one benchmark, dropped afterwards. Yields the
    SQLAlchemy async URL (psycopg 3)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class ServeProcess:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class BenchNode:
    """One force node on disk (and optionally in PostgreSQL) with a registered force system."""

    data_dir: Path
    force_code: str = "05"
    database_url: str | None = None
    client_id: str = ""
    client_secret: str = ""
    servers: list[ServeProcess] = field(default_factory=list)

    def env(self, url: str = "http://127.0.0.1:8005") -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            GATEWAY_ENVIRONMENT="development",
            GATEWAY_FORCE_CODE=self.force_code,
            GATEWAY_DATA_DIR=str(self.data_dir),
            GATEWAY_NODE_URL=url,
            GATEWAY_LOG_LEVEL="WARNING",
            GATEWAY_LOG_JSON="true",
        )
        if self.database_url:
            env["GATEWAY_DATABASE_URL"] = self.database_url
        return env

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(GATEWAY_CLI), *args],
            env=self.env(),
            capture_output=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise NodeProcessError(
                f"gateway {' '.join(args)} failed: {done.stderr.decode()[-2000:]}"
            )
        return done.stdout.decode()

    def init(self) -> None:
        self._cli("init")
        out = self._cli("clients", "add", "bench-loader", "--scopes", "records:write,records:read")
        found = dict(re.findall(r"^(client_id|client_secret):\s+(\S+)", out, re.MULTILINE))
        if len(found) != 2:
            raise NodeProcessError("could not read the registered client from `gateway clients`")
        self.client_id, self.client_secret = found["client_id"], found["client_secret"]

    def serve(self) -> ServeProcess:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [str(GATEWAY_CLI), "serve", "--port", str(port)],
            env=self.env(url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        server = ServeProcess(url=url, process=process)
        self.servers.append(server)
        deadline = time.monotonic() + READY_TIMEOUT_S
        with httpx.Client(base_url=url, timeout=2) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    err = process.stderr.read().decode()[-2000:] if process.stderr else ""
                    raise NodeProcessError(f"gateway serve exited: {err}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/readyz").status_code == 200:
                        return server
                # A readiness poll, not a wait for an outcome under test.
                time.sleep(0.1)
        raise NodeProcessError(f"node at {url} not ready after {READY_TIMEOUT_S} s")

    def stop(self) -> None:
        for server in self.servers:
            if server.process.poll() is None:
                server.process.terminate()
                try:
                    server.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    server.process.kill()
                    server.process.wait()
            if server.process.stderr:
                server.process.stderr.close()
        self.servers.clear()

    def token(self, url: str, scope: str = "records:write records:read") -> str:
        response = httpx.post(
            f"{url}/oauth/token",
            data={"grant_type": "client_credentials", "scope": scope},
            auth=(self.client_id, self.client_secret),
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def __enter__(self) -> BenchNode:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
