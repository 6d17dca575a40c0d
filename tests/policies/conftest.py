"""Fixtures for the policy tests: the shipped example engine and throwaway policy directories."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from policies import EXAMPLE_POLICY_DIR, PolicyEngine

WHEN = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)

WritePolicies = Callable[..., Path]


def write_agreement(
    root: Path,
    agreement_id: str,
    cedar: str,
    *,
    parties: tuple[str, ...] = ("05", "20"),
    purposes: tuple[str, ...] = ("investigation", "safeguarding"),
    start: str = "2025-01-01",
    end: str = "2027-12-31",
    review: str = "2027-06-30",
) -> None:
    folder = root / "agreements"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{agreement_id}.cedar").write_text(cedar, encoding="utf-8")
    metadata = {
        "id": agreement_id,
        "title": f"Test agreement {agreement_id}",
        "parties": list(parties),
        "legal_basis": "DPA 2018 Part 3",
        "purposes": list(purposes),
        "start": start,
        "end": end,
        "review": review,
        "owner_contact": "Test information sharing team",
    }
    (folder / f"{agreement_id}.yaml").write_text(yaml.safe_dump(metadata), encoding="utf-8")


@pytest.fixture(scope="session")
def example_engine() -> PolicyEngine:
    return PolicyEngine.load(EXAMPLE_POLICY_DIR)


READ_ALL = """
@id("t.hits") @reason("hits")
permit (principal, action == Action::"search_hits", resource);
@id("t.read") @reason("read")
permit (principal, action == Action::"read_record", resource);
@id("t.fields") @reason("all fields")
permit (principal, action in Action::"fields", resource);
"""
