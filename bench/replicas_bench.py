"""App replicas in front of one PostgreSQL database (issue 9): bulk throughput of one `gateway
serve` process vs two on the same database, with the same concurrent uploaders, and proof that
the two replicas still write one consistent audit log (exported and verified with the CLI).

Run: ``.venv/bin/python -m bench --only replicas [--quick]``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.ingest_bench import record_chunks
from bench.node_process import (
    GATEWAY_CLI,
    BenchNode,
    postgres_available,
    rss_mb,
    temp_postgres_database,
)
from gateway.settings import DEV_AUDITOR_TOKEN

UPLOADERS = 4


def _upload_all(node: BenchNode, urls: list[str], chunks: list[tuple[bytes, int]]) -> float:
    """`UPLOADERS` threads share the chunks; uploader i talks to replica i mod len(urls), as a
    round-robin load balancer would spread connections. Returns the elapsed seconds."""
    tokens = {url: node.token(url) for url in urls}
    errors: list[str] = []
    barrier = threading.Barrier(UPLOADERS + 1)

    def uploader(i: int) -> None:
        url = urls[i % len(urls)]
        mine = chunks[i::UPLOADERS]
        with httpx.Client(base_url=url, timeout=600) as client:
            barrier.wait()
            for body, count in mine:
                response = client.post(
                    "/v1/records/bulk",
                    content=body,
                    headers={
                        "Authorization": f"Bearer {tokens[url]}",
                        "Content-Type": "application/x-ndjson",
                    },
                )
                if response.status_code != 200 or response.json()["accepted"] != count:
                    errors.append(f"{response.status_code}: {response.text[:200]}")

    threads = [threading.Thread(target=uploader, args=(i,)) for i in range(UPLOADERS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"bulk uploads failed: {errors[:3]}")
    return elapsed


def _verify_audit(url: str, out_dir: Path) -> dict[str, Any]:
    """Export the log through one replica's auditor API and verify it offline with `gateway audit
    verify`, exactly as an auditor would."""
    export = out_dir / "audit-export.ndjson"
    headers = {"Authorization": f"Bearer {DEV_AUDITOR_TOKEN}"}
    with (
        httpx.Client(base_url=url, timeout=120) as client,
        client.stream("GET", "/v1/audit/export", headers=headers) as response,
    ):
        response.raise_for_status()
        note = base64.b64decode(response.headers["X-Checkpoint"]).decode()
        with export.open("wb") as fh:
            for chunk in response.iter_bytes():
                fh.write(chunk)
        vkey = client.get("/v1/audit/checkpoint").headers["X-Verifier-Key"]
    export.with_name(export.name + ".checkpoint").write_text(note, encoding="utf-8")
    done = subprocess.run(
        [str(GATEWAY_CLI), "audit", "verify", str(export), "--key", vkey],
        capture_output=True,
        timeout=300,
        check=False,
    )
    entries = sum(1 for _ in export.open("rb"))
    return {
        "entries": entries,
        "verified": done.returncode == 0,
        "verify_output": done.stdout.decode().strip().splitlines()[-1:],
    }


def _checkpoint_sizes(urls: list[str]) -> list[int]:
    sizes = []
    for url in urls:
        response = httpx.get(
            f"{url}/v1/audit/checkpoint",
            headers={"Authorization": f"Bearer {DEV_AUDITOR_TOKEN}"},
            timeout=30,
        )
        response.raise_for_status()
        # The checkpoint body is a C2SP note: origin line, then the tree size.
        sizes.append(int(response.text.splitlines()[1]))
    return sizes


def _run(replicas: int, chunks: list[tuple[bytes, int]], tmp: Path) -> dict[str, Any]:
    total = sum(count for _, count in chunks)
    with (
        temp_postgres_database("gw_bench_replicas") as database_url,
        BenchNode(data_dir=tmp / f"replicas-{replicas}", database_url=database_url) as node,
    ):
        node.init()
        servers = [node.serve() for _ in range(replicas)]
        urls = [s.url for s in servers]
        elapsed = _upload_all(node, urls, chunks)
        figures: dict[str, Any] = {
            "replicas": replicas,
            "uploaders": UPLOADERS,
            "records": total,
            "seconds": round(elapsed, 2),
            "records_per_s": round(total / elapsed),
            "peak_rss_mb_per_replica": [rss_mb(s.pid)["peak_rss_mb"] for s in servers],
        }
        if replicas > 1:
            figures["audit"] = _verify_audit(urls[0], tmp)
            figures["audit"]["checkpoint_sizes_seen_by_each_replica"] = _checkpoint_sizes(urls)
        return figures


def main(quick: bool) -> dict[str, Any]:
    if not postgres_available():
        return {"skipped": "PostgreSQL not reachable"}
    chunks = list(record_chunks(12_000 if quick else 60_000))
    with tempfile.TemporaryDirectory(prefix="replicas-bench-") as tmp_name:
        tmp = Path(tmp_name)
        one = _run(1, chunks, tmp)
        two = _run(2, chunks, tmp)
    return {
        "one_replica": one,
        "two_replicas": two,
        "two_over_one": round(two["records_per_s"] / one["records_per_s"], 3),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    import sys

    print(json.dumps(main(quick="--quick" in sys.argv[1:]), indent=2))
