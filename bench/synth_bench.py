"""Synthetic data throughput: records per second that `gateway synth` writes, end to end
(planning, generating, JSON encoding, writing NDJSON and the ground truth).

The issue's target is 1,000,000 records in under five minutes (3,334 records/s) on a 2-core
machine; the full run measures exactly that (three forces x 333,334 records).

Run: `.venv/bin/python -m bench.synth_bench [--quick]`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from gateway.synth import generate

FORCES = ["05", "20", "01"]
TARGET_RECORDS_PER_SECOND = 1_000_000 / 300


def main(quick: bool = False) -> dict[str, float | int | bool]:
    """Generate one run into a temporary directory and return its figures."""
    per_force = 5_000 if quick else 333_334
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        summary = generate(FORCES, per_force, 7, Path(tmp))
        written = sum(path.stat().st_size for path in Path(tmp).iterdir())
    return {
        "forces": len(FORCES),
        "records": summary.total_records,
        "seconds": round(summary.seconds, 2),
        "records_per_second": round(summary.records_per_second),
        "megabytes_written": round(written / 1e6, 1),
        "planted_links": sum(summary.planted_links.values()),
        "meets_1m_in_5_min": summary.records_per_second >= TARGET_RECORDS_PER_SECOND,
    }


if __name__ == "__main__":
    print(json.dumps(main(quick="--quick" in sys.argv[1:]), indent=2))
