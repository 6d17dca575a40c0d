"""The policy owners' tools: check, test and explain, as library calls and as `gateway policy`."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from gateway.policy_cli import policy_app
from policies import (
    EXAMPLE_POLICY_DIR,
    Outcome,
    PolicyContext,
    PolicyEngine,
    Principal,
    RecordAttributes,
    check_policy_dir,
    explain,
    run_policy_tests,
)
from schemas.enums import ClassificationRank, Purpose, VettingLevel
from tests.policies.conftest import READ_ALL, WHEN, write_agreement

runner = CliRunner()


def test_example_policies_pass_check() -> None:
    report = check_policy_dir(EXAMPLE_POLICY_DIR, today=date(2026, 6, 1))
    assert report.ok, report.errors
    assert report.warnings == ()
    assert {a.id: a.parties for a in report.agreements} == {
        "county-lines-05-20": ("05", "20"),
        "modern-slavery-regional": ("05", "20", "01"),
        "met-pointers-only": ("01", "05", "20"),
        "own-force-use": ("05", "20", "01"),
    }
    assert all(a.status == "in force" for a in report.agreements)


def test_example_policies_pass_their_table_tests() -> None:
    report = run_policy_tests(EXAMPLE_POLICY_DIR)
    assert report.errors == ()
    assert report.failed == 0
    assert report.passed >= 15
    outcomes = {r.decision.outcome for r in report.results if r.decision is not None}
    assert outcomes == {Outcome.REDACTED, Outcome.POINTER, Outcome.HIDDEN, Outcome.DENIED}


def test_check_warns_on_expiry_unknown_forces_and_obligations(tmp_path: Path) -> None:
    write_agreement(
        tmp_path, "soon", READ_ALL, start="2025-01-01", end="2026-06-20", review="2026-05-01"
    )
    write_agreement(tmp_path, "strangers", READ_ALL.replace("t.", "s."), parties=("05", "99"))
    write_agreement(
        tmp_path,
        "odd",
        '@id("o.x") @obligation("shred") @reason("r") '
        'permit (principal, action == Action::"identity", resource);',
    )
    report = check_policy_dir(tmp_path, today=date(2026, 6, 1))
    assert report.ok
    text = "\n".join(report.warnings)
    assert "agreement soon expires in 19 days" in text
    assert "agreement soon was due for review on 2026-05-01" in text
    assert "agreement strangers names unknown force codes: 99" in text
    assert "'shred'" in text


def test_check_reports_errors_for_an_invalid_set(tmp_path: Path) -> None:
    write_agreement(
        tmp_path,
        "broken",
        '@id("b") @reason("r") permit (principal, action, resource) when { resource.nope };',
    )
    report = check_policy_dir(tmp_path, today=date(2026, 6, 1))
    assert not report.ok
    assert any("agreements/broken.cedar" in e and "nope" in e for e in report.errors)


def test_table_test_failures_are_reported(tmp_path: Path) -> None:
    write_agreement(tmp_path, "open", READ_ALL)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yaml").write_text(
        """
time: 2026-06-01T10:00:00Z
cases:
  - name: wrong expectation
    principal: {user_id: u, force: "20", roles: [analyst], vetting: NPPV2}
    record: {owner_force: "05", kind: person, classification: OFFICIAL}
    context: {purpose: investigation, case_reference: X}
    expect: {decision: pointer, withheld: [identity]}
  - name: bad input
    principal: {user_id: u, force: "20", vetting: NPPV9}
    record: {owner_force: "05", kind: person, classification: OFFICIAL}
    context: {purpose: investigation, case_reference: X}
    expect: {decision: full}
""",
        encoding="utf-8",
    )
    report = run_policy_tests(tmp_path)
    assert not report.ok
    assert report.failed == 2
    wrong, bad = report.results
    assert "expected pointer, got full" in wrong.failures[0]
    assert "withheld: expected ['identity'], got []" in wrong.failures[1]
    assert "vetting" in bad.failures[0]


def test_explain_gives_each_groups_fate_and_each_agreements_fit(
    example_engine: PolicyEngine,
) -> None:
    principal = Principal("a20", "20", frozenset({"analyst"}), VettingLevel.NPPV2)
    record = RecordAttributes("05", "county_line", ClassificationRank.OFFICIAL_SENSITIVE)
    explanation = explain(
        example_engine, principal, record, PolicyContext(Purpose.INVESTIGATION, "OP-1", WHEN)
    )
    data = explanation.to_json()
    assert data["outcome"] == "redacted"
    fates = {f["group"]: f for f in data["field_groups"]}
    assert fates["location_precise"]["obligations"] == ["generalise_postcode"]
    assert fates["victim_details"]["released"] is False
    assert fates["victim_details"]["reason"] == (
        "No agreement releases victim_details fields of county_line records."
    )
    assert fates["identity"]["policy_ids"] == ["cl0520.core_fields"]
    fits = {f["id"]: f for f in data["agreements"]}
    assert fits["county-lines-05-20"]["applies"] is True
    assert fits["met-pointers-only"]["applies"] is True


def test_cli_check_and_test_pass_on_the_examples() -> None:
    checked = runner.invoke(policy_app, ["check", str(EXAMPLE_POLICY_DIR), "--on", "2026-06-01"])
    assert checked.exit_code == 0, checked.output
    assert "county-lines-05-20" in checked.output
    assert "30 policies valid" in checked.output
    tested = runner.invoke(policy_app, ["test", str(EXAMPLE_POLICY_DIR)])
    assert tested.exit_code == 0, tested.output
    assert " 0 failed" in tested.output


def test_cli_check_fails_on_an_invalid_set(tmp_path: Path) -> None:
    write_agreement(tmp_path, "broken", "permit (principal,")
    result = runner.invoke(policy_app, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "invalid" in result.output


def test_cli_explain_json_and_tables(tmp_path: Path) -> None:
    principal = tmp_path / "p.json"
    principal.write_text(
        json.dumps({"user_id": "a20", "force": "20", "roles": ["analyst"], "vetting": "NPPV2"}),
        encoding="utf-8",
    )
    record = tmp_path / "r.json"
    record.write_text(
        json.dumps({"owner_force": "01", "kind": "person", "classification": "OFFICIAL_SENSITIVE"}),
        encoding="utf-8",
    )
    args = [
        "explain",
        "--principal",
        str(principal),
        "--record",
        str(record),
        "--purpose",
        "investigation",
        "--case-ref",
        "OP-9",
        "--on",
        "2026-06-01",
        "--policies",
        str(EXAMPLE_POLICY_DIR),
    ]
    as_json = runner.invoke(policy_app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["outcome"] == "pointer"
    assert data["contact"].startswith("Met Intelligence Bureau")
    assert "met.no_records" in data["policy_ids"]
    tables = runner.invoke(policy_app, args)
    assert tables.exit_code == 0, tables.output
    assert "pointer" in tables.output


def test_cli_explain_rejects_bad_input(tmp_path: Path) -> None:
    principal = tmp_path / "p.json"
    principal.write_text(
        json.dumps({"user_id": "a", "force": "20", "vetting": "TOP"}), encoding="utf-8"
    )
    record = tmp_path / "r.json"
    record.write_text("{}", encoding="utf-8")
    result = runner.invoke(
        policy_app,
        [
            "explain",
            "--principal",
            str(principal),
            "--record",
            str(record),
            "--policies",
            str(EXAMPLE_POLICY_DIR),
        ],
    )
    assert result.exit_code == 2
    assert "vetting" in result.output
