"""A 100,000-line bulk upload is streamed: the node's memory grows with the per-line report it
must answer, not with the records, whatever the body's length (issue 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from schemas.examples import example_record
from tests.gateway.conftest import register_client
from tests.hardening.conftest import NodeProcess, federated_node, free_port

LINES = 100_000
# What one accepted line may add to the node's peak memory. The answer lists every line
# ({"line", "status", "record_id", "version", "outcome"}), about 0.7 KB a line while it is
# built and serialised; a parsed record held in Python takes several KB, so a node that kept
# the upload's records (or its whole body beside the report) would be far above this.
MAX_BYTES_PER_LINE = 1_500


def _lines(count: int, prefix: str) -> Iterator[bytes]:
    template = example_record("phone", id="x", owner_force="20")
    for n in range(count):
        template["id"] = f"{prefix}-{n}"
        template["body"]["number"] = f"+4479{n:08d}"
        yield orjson.dumps(template) + b"\n"


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    fields = {}
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = row.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


@pytest.mark.slow
def test_a_100000_line_upload_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    settings = federated_node(tmp_path).settings
    client_id, secret = register_client(settings, "rms", ["records:write"])
    port = free_port()
    node = NodeProcess(settings.model_copy(update={"node_url": f"http://127.0.0.1:{port}"}), port)
    node.start()
    try:
        assert node.process is not None
        pid = node.process.pid
        token = node.token(client_id, secret)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
        # Warm up: the first large upload starts the bulk-load workers and fills the caches.
        warm = httpx.post(
            f"{node.url}/v1/records/bulk",
            content=b"".join(_lines(600, "warm")),
            headers=headers,
            timeout=120,
        )
        assert warm.status_code == 200 and warm.json()["accepted"] == 600
        # Reset the peak to the present (Linux: 5 > clear_refs), so VmHWM is the upload's own.
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        before = _status(pid)["VmRSS"]
        sent = 0

        def body() -> Iterator[bytes]:
            nonlocal sent
            for line in _lines(LINES, "big"):
                sent += len(line)
                yield line

        response = httpx.post(
            f"{node.url}/v1/records/bulk", content=body(), headers=headers, timeout=900
        )
        peak = _status(pid)["VmHWM"]
    finally:
        node.stop()
    assert response.status_code == 200, response.text[:300]
    report = response.json()
    assert report["accepted"] == LINES and len(report["lines"]) == LINES
    grown = peak - before
    assert grown < LINES * MAX_BYTES_PER_LINE, (
        f"the node's peak memory grew by {grown / 1e6:.1f} MB for a {sent / 1e6:.1f} MB body "
        f"({grown / LINES:.0f} bytes a line)"
    )
