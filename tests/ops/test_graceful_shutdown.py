"""Graceful shutdown of a real `gateway serve` process: SIGTERM in the middle of a bulk upload
lets the upload finish, and the audit writer flushes and signs before the process exits."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import rfc8785

from audit.entry import decode_entry
from audit.verify import verify_export
from gateway.identity.signing import load_signing_key_file
from gateway.node import init_node
from gateway.node_offline import export_local
from schemas.examples import example_record
from tests.gateway.conftest import make_settings, register_client

pytestmark = pytest.mark.slow
DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: object, what: str) -> None:
    """Poll a condition until it holds (not a fixed sleep), failing after DEADLINE."""
    assert callable(condition)
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def line(record_id: str) -> bytes:
    return json.dumps(example_record("person", id=record_id, owner_force="20")).encode() + b"\n"


def test_sigterm_lets_an_in_flight_bulk_upload_finish_and_flushes_the_audit_log(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path / "node", node_url=url)
    init_node(settings)
    client = register_client(settings, "rms", ["records:write"])
    env = {
        **os.environ,
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_FORCE_CODE": "20",
        "GATEWAY_NODE_URL": url,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_AUDITOR_TOKEN": "auditor-" + "x" * 32,
        "GATEWAY_SHUTDOWN_GRACE_SECONDS": "20",
    }
    stderr = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
        env=env,
        stdout=stderr,
        stderr=stderr,
    )
    try:
        wait_until(lambda: accepts_connections(port), "the node to listen")
        token = httpx.post(
            f"{url}/oauth/token", data={"grant_type": "client_credentials"}, auth=client
        ).json()["access_token"]

        first = b"".join(line(f"p-early-{n}") for n in range(3))
        rest = b"".join(line(f"p-late-{n}") for n in range(3))
        head = (
            f"POST /v1/records/bulk HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\n"
            f"Content-Length: {len(first) + len(rest)}\r\nExpect: 100-continue\r\n\r\n"
        ).encode()
        upload = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        upload.sendall(head)
        # "100 Continue" comes when the endpoint starts reading the body: the request is in
        # flight inside the application.
        assert upload.recv(1024).startswith(b"HTTP/1.1 100")
        upload.sendall(first)

        server.send_signal(signal.SIGTERM)
        # Shutdown has begun once the node stops accepting new connections.
        wait_until(lambda: not accepts_connections(port), "the listener to close")
        assert server.poll() is None  # still draining our request

        upload.sendall(rest)
        response = b""
        while chunk := upload.recv(65536):
            response += chunk
        upload.close()
        status_line, _, rest_of_response = response.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 200 OK", response[:300]
        report = json.loads(rest_of_response.partition(b"\r\n\r\n")[2])
        assert (report["accepted"], report["rejected"]) == (6, 0)

        # uvicorn re-raises the signal once it has shut down cleanly, so the exit status says
        # "terminated by SIGTERM" (143 in a shell) as process supervisors expect.
        assert server.wait(timeout=DEADLINE) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        stderr.close()

    assert b'"node.stopped"' in (tmp_path / "serve.log").read_bytes()
    # The log holds the upload's entries, and the checkpoint the node signed while stopping
    # covers all of them: nothing was left in the writer's queue.
    export = tmp_path / "audit.ndjson"
    note, rows, _vkey = export_local(export, settings=settings, as_stored=True)
    key = load_signing_key_file(settings.signing_key_file)
    with export.open("rb") as lines:
        verdict = verify_export(
            lines,
            checkpoint_text=note,
            origin=settings.log_origin,
            key_name=settings.log_origin,
            public_key=key.public_key,
        )
    assert verdict.ok, verdict
    assert verdict.uncovered == 0 and verdict.entries == rows
    stored = set()
    with export.open("rb") as lines:
        for raw in lines:
            entry = decode_entry(rfc8785.dumps(json.loads(raw)["entry"]))
            stored.update(ref.record_id for ref in entry.records)
    assert {f"p-early-{n}" for n in range(3)} | {f"p-late-{n}" for n in range(3)} <= stored
