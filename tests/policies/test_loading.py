"""Loading fails closed on any invalid policy set; a failed reload keeps the last good set."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import (
    EXAMPLE_POLICY_DIR,
    Outcome,
    PolicyContext,
    PolicyEngine,
    PolicyLoadError,
    Principal,
    RecordAttributes,
    load_policy_set,
)
from schemas.enums import ClassificationRank, Purpose, VettingLevel
from tests.policies.conftest import READ_ALL, WHEN, write_agreement

PRINCIPAL = Principal("u20", "20", frozenset({"analyst"}), VettingLevel.NPPV2)
RECORD = RecordAttributes("05", "county_line", ClassificationRank.OFFICIAL)
CONTEXT = PolicyContext(Purpose.INVESTIGATION, "OP-1", WHEN)


@pytest.mark.parametrize(
    ("cedar", "message"),
    [
        pytest.param(
            '@id("x") @reason("r") permit (principal, action, resource) when { ',
            "parse error",
            id="syntax-error",
        ),
        pytest.param(
            '@id("x") @reason("r") permit (principal, action, resource) '
            'when { resource.colour == "red" };',
            "colour",
            id="unknown-attribute",
        ),
        pytest.param(
            '@id("x") @reason("r") permit (principal, action, resource) '
            'when { resource.classification_rank == "high" };',
            "x",
            id="type-error",
        ),
        pytest.param(
            '@id("x") @reason("r") permit (principal, action == Action::"delete", resource);',
            "delete",
            id="unknown-action",
        ),
        pytest.param('@reason("r") permit (principal, action, resource);', "@id", id="no-id"),
        pytest.param('@id("x") permit (principal, action, resource);', "@reason", id="no-reason"),
        pytest.param(
            '@id("x") @reason("r") permit (principal, action, resource);\n'
            '@id("x") @reason("r") permit (principal, action, resource);',
            "used twice",
            id="duplicate-id",
        ),
        pytest.param(
            '@id("base.purpose_missing") @reason("r") permit (principal, action, resource);',
            "also used",
            id="id-clash-with-base",
        ),
        pytest.param(
            '@id("x") @visibility("grey") @reason("r") forbid (principal, action, resource);',
            "visibility",
            id="bad-visibility",
        ),
        pytest.param(
            '@id("x") @reason("r") permit (?principal, action, resource);', "", id="template"
        ),
    ],
)
def test_invalid_policy_set_fails_to_load(tmp_path: Path, cedar: str, message: str) -> None:
    write_agreement(tmp_path, "bad", cedar)
    with pytest.raises(PolicyLoadError) as caught:
        PolicyEngine.load(tmp_path)
    assert caught.value.problems
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("metadata_text", "message"),
    [
        pytest.param("id: meta\ntitle: t\n", "parties", id="missing-fields"),
        pytest.param("- just a list\n", "mapping", id="not-a-mapping"),
        pytest.param("id: [unclosed\n", "YAML", id="bad-yaml"),
    ],
)
def test_invalid_metadata_fails_to_load(tmp_path: Path, metadata_text: str, message: str) -> None:
    write_agreement(tmp_path, "meta", READ_ALL)
    (tmp_path / "agreements" / "meta.yaml").write_text(metadata_text, encoding="utf-8")
    with pytest.raises(PolicyLoadError, match=message):
        load_policy_set(tmp_path)


def test_metadata_rules(tmp_path: Path) -> None:
    write_agreement(tmp_path, "dates", READ_ALL, start="2027-01-01", end="2026-01-01")
    write_agreement(tmp_path, "parties", READ_ALL, parties=("5", "20"))
    with pytest.raises(PolicyLoadError) as caught:
        load_policy_set(tmp_path)
    text = str(caught.value)
    assert "end date is before start date" in text
    assert "two-digit PNC force codes" in text


def test_cedar_file_without_metadata_fails(tmp_path: Path) -> None:
    write_agreement(tmp_path, "lonely", READ_ALL)
    (tmp_path / "agreements" / "lonely.yaml").unlink()
    with pytest.raises(PolicyLoadError, match=r"no lonely\.yaml"):
        load_policy_set(tmp_path)


def test_base_rules_may_only_forbid(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "rules.cedar").write_text(
        '@id("b") @reason("r") permit (principal, action, resource);', encoding="utf-8"
    )
    write_agreement(tmp_path, "ok", READ_ALL)
    with pytest.raises(PolicyLoadError, match="base rules may only forbid"):
        load_policy_set(tmp_path, base_dir=base)


def test_schema_missing_an_engine_action_fails(tmp_path: Path) -> None:
    schema = (EXAMPLE_POLICY_DIR / "schema.cedarschema").read_text(encoding="utf-8")
    trimmed = tmp_path / "schema.cedarschema"
    trimmed.write_text(schema.replace("victim_details, ", ""), encoding="utf-8")
    write_agreement(tmp_path, "ok", READ_ALL)
    with pytest.raises(PolicyLoadError, match="victim_details"):
        load_policy_set(tmp_path, schema_path=trimmed)


def test_policy_hash_covers_policies_and_metadata(tmp_path: Path) -> None:
    write_agreement(tmp_path, "hashed", READ_ALL)
    first = load_policy_set(tmp_path).policy_hash
    assert first == load_policy_set(tmp_path).policy_hash
    assert len(first) == 64
    write_agreement(tmp_path, "hashed", READ_ALL, review="2027-07-01")
    second = load_policy_set(tmp_path).policy_hash
    write_agreement(tmp_path, "hashed", READ_ALL + "\n// a comment\n", review="2027-07-01")
    third = load_policy_set(tmp_path).policy_hash
    assert len({first, second, third}) == 3


def test_failed_reload_keeps_the_last_good_set(tmp_path: Path) -> None:
    write_agreement(tmp_path, "live", READ_ALL)
    engine = PolicyEngine.load(tmp_path)
    good_hash = engine.policy_hash
    (tmp_path / "agreements" / "live.cedar").write_text("permit (principal,", encoding="utf-8")

    result = engine.reload()

    assert not result.ok
    assert not result.changed
    assert result.problems
    assert result.policy_hash == result.previous_hash == good_hash
    assert engine.policy_hash == good_hash
    assert engine.decide(PRINCIPAL, RECORD, CONTEXT).outcome is Outcome.FULL


def test_successful_reload_swaps_the_set_but_not_for_a_request_in_flight(tmp_path: Path) -> None:
    write_agreement(tmp_path, "live", READ_ALL)
    engine = PolicyEngine.load(tmp_path)
    in_flight = engine.request_cache(PRINCIPAL, CONTEXT)
    old_hash = engine.policy_hash
    write_agreement(
        tmp_path,
        "live",
        READ_ALL.replace('action in Action::"fields"', 'action == Action::"identity"'),
    )

    result = engine.reload()

    assert result.ok and result.changed
    assert result.previous_hash == old_hash != result.policy_hash == engine.policy_hash
    assert engine.decide(PRINCIPAL, RECORD, CONTEXT).outcome is Outcome.REDACTED
    pinned = in_flight.decide(RECORD)
    assert pinned.outcome is Outcome.FULL
    assert pinned.policy_hash == old_hash


def test_the_shipped_examples_load() -> None:
    loaded = load_policy_set(EXAMPLE_POLICY_DIR)
    assert {a.metadata.id for a in loaded.agreements} == {
        "county-lines-05-20",
        "modern-slavery-regional",
        "met-pointers-only",
        "own-force-use",
    }
    assert all(p.layer == "base" for p in loaded.policies.values() if p.id.startswith("base."))
