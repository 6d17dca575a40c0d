"""One small three-force run shared by the tests that only read it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.synth import SynthSummary, generate

RUN_FORCES = ["05", "20", "01"]
RUN_RECORDS = 1500
RUN_SEED = 7
SENTINELS = ["ZZSENTINEL-ALPHA-7731", "Ωmega Sentinel 0042"]


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    out = tmp_path_factory.mktemp("synth") / "run"
    return generate(RUN_FORCES, RUN_RECORDS, RUN_SEED, out, sentinels=SENTINELS)


@pytest.fixture(scope="session")
def run_records(small_run: SynthSummary) -> dict[str, list[dict[str, Any]]]:
    """force -> records, in file order."""
    return {
        force: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for force, path in small_run.files.items()
    }


@pytest.fixture(scope="session")
def ground_truth(small_run: SynthSummary) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(small_run.ground_truth.read_text(encoding="utf-8"))
    return data


def read_dir(path: Path) -> dict[str, bytes]:
    return {child.name: child.read_bytes() for child in sorted(path.iterdir())}
