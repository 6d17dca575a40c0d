"""Figures for the pure audit core: proof cost on a 1,000,000-entry tree and export verification.

Run: ``.venv/bin/python bench/audit_core_bench.py [--quick]``. Prints a JSON object of figures.
"""

from __future__ import annotations

import importlib.util
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.merkle import Frontier, inclusion_proof, leaf_hash, root_at, verify_inclusion
from audit.verify import export_line, verify_export


def orjson_available() -> bool:
    return importlib.util.find_spec("orjson") is not None


ORIGIN = "audit.node05.example/log"


def synthetic_entries(count: int) -> Iterator[bytes]:
    """Canonical entries shaped like real disclose entries (about 700 bytes each)."""
    for i in range(count):
        entry = {
            "actor": {
                "force": "05",
                "roles": ["analyst"],
                "user_id": f"u-{i % 5000:06d}",
                "vetting": "NPPV3",
            },
            "case_ref": f"OP-2025-{i % 997:04d}",
            "decision": "redacted",
            "fields_withheld": ["body.subjects.0.date_of_birth"],
            "kind": "disclose",
            "node": "05",
            "policy_hash": "cd" * 32,
            "policy_ids": ["base.clearance", "agreement.nw-rocu-2025"],
            "purpose": "investigation",
            "query_fingerprint": f"{i:064x}",
            "recipient_force": "20",
            "records": [{"force": "05", "record_id": f"r-{i:08d}", "version": 1 + i % 7}],
            "request_id": f"req-{i:012d}",
            "sealed": {"ciphertext": "A" * 120, "key_id": "2025-01", "nonce": "B" * 16},
            "time": f"2025-01-01T10:{i // 60 % 60:02d}:{i % 60:02d}.000000Z",
            "v": 1,
        }
        yield json.dumps(entry, sort_keys=True, separators=(",", ":")).encode("ascii")


class LevelStore:
    """Perfect nodes in per-level lists: the densest in-memory node store."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = []

    def put(self, level: int, index: int, value: bytes) -> None:
        while len(self.levels) <= level:
            self.levels.append([])
        row = self.levels[level]
        assert len(row) == index
        row.append(value)

    def get(self, level: int, index: int) -> bytes:
        return self.levels[level][index]


def bench_inclusion(size: int, samples: int) -> dict[str, float]:
    store = LevelStore()
    frontier = Frontier()
    start = time.perf_counter()
    for i in range(size):
        for level, index, value in frontier.append(leaf_hash(i.to_bytes(8, "big"))):
            store.put(level, index, value)
    build_s = time.perf_counter() - start
    root = root_at(size, store.get)
    rng = random.Random(7)
    timings = []
    for _ in range(samples):
        index = rng.randrange(size)
        t0 = time.perf_counter()
        proof = inclusion_proof(index, size, store.get)
        timings.append(time.perf_counter() - t0)
        verify_inclusion(leaf_hash(index.to_bytes(8, "big")), index, size, proof, root)
    return {
        "tree_size": size,
        "tree_build_s": round(build_s, 2),
        "inclusion_proof_median_ms": round(statistics.median(timings) * 1000, 4),
        "inclusion_proof_p99_ms": round(sorted(timings)[int(samples * 0.99) - 1] * 1000, 4),
    }


def bench_verify(size: int) -> dict[str, float | str]:
    frontier = Frontier()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.ndjson"
        with path.open("wb") as out:
            for i, entry in enumerate(synthetic_entries(size)):
                line = export_line(i, entry)
                frontier.append(bytes.fromhex(line[-67:-3].decode()))
                out.write(line)
        key = Ed25519PrivateKey.generate()
        note = sign_checkpoint(Checkpoint(ORIGIN, size, frontier.root()), ORIGIN, key).to_text()
        start = time.perf_counter()
        with path.open("rb") as lines:
            report = verify_export(
                lines,
                checkpoint_text=note,
                origin=ORIGIN,
                key_name=ORIGIN,
                public_key=key.public_key(),
            )
        elapsed = time.perf_counter() - start
        megabytes = path.stat().st_size / 1e6
    assert report.ok, report
    return {
        "export_entries": size,
        "export_mb": round(megabytes, 1),
        "verify_export_s": round(elapsed, 2),
        "verify_export_us_per_entry": round(elapsed / size * 1e6, 2),
        "canonical_check": "orjson round trip" if orjson_available() else "stdlib json round trip",
    }


def main(quick: bool) -> dict[str, float | str]:
    size = 50_000 if quick else 1_000_000
    figures: dict[str, float | str] = {}
    figures.update(bench_inclusion(size, samples=2000))
    figures.update(bench_verify(size))
    return figures


if __name__ == "__main__":
    print(json.dumps(main(quick="--quick" in sys.argv), indent=2))
