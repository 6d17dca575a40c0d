"""`gateway import`: load an NDJSON file into a node, over HTTP with client credentials or
straight into the local node's database. Either way the same validation, encryption, indexing and
audit apply; the summary and every rejected line go to a report file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass
class ImportSummary:
    lines: int = 0
    accepted: int = 0
    rejected: int = 0
    created: int = 0
    replaced: int = 0
    unchanged: int = 0
    seconds: float = 0.0
    rejections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def add(self, report: dict[str, Any], line_offset: int) -> None:
        for key in ("accepted", "rejected", "created", "replaced", "unchanged"):
            setattr(self, key, getattr(self, key) + int(report.get(key, 0)))
        for line in report.get("lines", []):
            if line.get("status") == "rejected":
                self.rejections.append({**line, "line": line["line"] + line_offset})

    def write_report(self, path: Path) -> None:
        body = {
            "lines": self.lines,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "created": self.created,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.per_second, 1),
            "rejections": self.rejections,
        }
        path.write_text(json.dumps(body, indent=2), encoding="utf-8")


def chunks(path: Path, lines_per_chunk: int) -> Iterator[tuple[int, bytes, int]]:
    """(offset of the chunk's first line, chunk bytes, number of lines) for the file."""
    buffer: list[bytes] = []
    offset = 0
    with path.open("rb") as fh:
        for line in fh:
            buffer.append(line if line.endswith(b"\n") else line + b"\n")
            if len(buffer) >= lines_per_chunk:
                yield offset, b"".join(buffer), len(buffer)
                offset += len(buffer)
                buffer = []
    if buffer:
        yield offset, b"".join(buffer), len(buffer)


def fetch_token(client: httpx.Client, client_id: str, secret: str) -> str:
    response = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "records:write"},
        auth=(client_id, secret),
    )
    if response.status_code != 200:
        raise RuntimeError(f"token refused ({response.status_code}): {response.text}")
    return str(response.json()["access_token"])


def import_over_http(
    path: Path,
    *,
    url: str,
    client_id: str,
    secret: str,
    lines_per_chunk: int = 2000,
    progress: Callable[[int], object] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ImportSummary:
    summary = ImportSummary()
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=300, transport=transport) as client:
        token = fetch_token(client, client_id, secret)
        for offset, body, count in chunks(path, lines_per_chunk):
            key = f"import-{path.name}-{offset}-{count}"[:128]
            response = client.post(
                "/v1/records/bulk",
                content=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/x-ndjson",
                    "Idempotency-Key": key,
                },
            )
            if response.status_code == 401:
                token = fetch_token(client, client_id, secret)
                response = client.post(
                    "/v1/records/bulk",
                    content=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/x-ndjson",
                        "Idempotency-Key": key,
                    },
                )
            if response.status_code != 200:
                raise RuntimeError(
                    f"bulk upload refused at line {offset + 1} ({response.status_code}): "
                    f"{response.text[:500]}"
                )
            summary.lines += count
            summary.add(response.json(), offset)
            if progress is not None:
                progress(count)
    summary.seconds = time.perf_counter() - started
    return summary
