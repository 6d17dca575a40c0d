"""`gateway policy check|test|explain`: the information manager's tools for policy directories.

The work is done by pure functions in `policies`; this module reads files, renders with Rich and
sets the exit code (0 ok, 1 policy problems or failed tests, 2 unusable input).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from policies import (
    EXAMPLE_POLICY_DIR,
    Decision,
    Mode,
    Outcome,
    PolicyContext,
    PolicyEngine,
    PolicyInputError,
    PolicyLoadError,
    check_policy_dir,
    explain,
    principal_from_mapping,
    record_from_mapping,
    run_policy_tests,
)
from schemas.enums import Purpose

policy_app = typer.Typer(
    help="Check, test and explain Cedar policy sets and information-sharing agreements.",
    no_args_is_help=True,
)

_OUTCOME_STYLE = {
    Outcome.FULL: "bold green",
    Outcome.REDACTED: "green",
    Outcome.POINTER: "yellow",
    Outcome.HIDDEN: "magenta",
    Outcome.DENIED: "bold red",
}

PolicyDir = Annotated[
    Path,
    typer.Argument(
        help="Policy directory holding agreements/ (and tests/ for `test`).",
        exists=True,
        file_okay=False,
        resolve_path=True,
    ),
]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


@policy_app.command("check")
def check(
    directory: PolicyDir,
    on: Annotated[
        datetime | None,
        typer.Option(
            help="Evaluate validity and expiry on this date (default: today).", formats=["%Y-%m-%d"]
        ),
    ] = None,
) -> None:
    """Validate the policies against the Cedar schema and list the agreements.

    Warns on agreements expiring within 30 days, expired or not yet in force, overdue reviews,
    unknown force codes and obligations the gateway cannot fulfil.
    """
    console = _console()
    today = on.date() if on else datetime.now(UTC).date()
    report = check_policy_dir(directory, today=today)
    if not report.ok:
        console.print(f"[bold red]Policy set in {directory} is invalid:[/]")
        for problem in report.errors:
            console.print(f"  [red]✗[/] {problem}")
        raise typer.Exit(1)
    table = Table(title=f"Agreements on {today.isoformat()}")
    table.add_column("id", no_wrap=True)
    for column in ("parties", "purposes", "valid", "review", "status", "policies"):
        table.add_column(column, overflow="fold")
    for a in report.agreements:
        style = {"in force": "green", "expired": "red"}.get(a.status, "yellow")
        table.add_row(
            a.id,
            ", ".join(a.parties),
            ", ".join(a.purposes),
            f"{a.start.isoformat()} → {a.end.isoformat()}",
            a.review.isoformat(),
            f"[{style}]{a.status}[/]",
            str(a.policy_count),
        )
    console.print(table)
    for warning in report.warnings:
        console.print(f"  [yellow]![/] {warning}")
    console.print(
        f"[green]✓[/] {report.policy_count} policies valid; policy set hash {report.policy_hash}"
    )


@policy_app.command("test")
def test(directory: PolicyDir) -> None:
    """Run the YAML table tests in DIRECTORY/tests (principal, record, context -> decision)."""
    console = _console()
    report = run_policy_tests(directory)
    for problem in report.errors:
        console.print(f"  [red]✗[/] {problem}")
    for result in report.results:
        if result.passed:
            console.print(f"  [green]✓[/] {result.file}: {result.name}")
        else:
            console.print(f"  [red]✗[/] {result.file}: {result.name}")
            for failure in result.failures:
                console.print(f"      {failure}")
    colour = "green" if report.ok else "red"
    console.print(f"[{colour}]{report.passed} passed, {report.failed} failed[/]")
    if not report.ok:
        raise typer.Exit(1)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {what} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{what} {path} must hold a JSON object")
    return data


def _render(console: Console, decision: Decision, explanation: dict[str, Any]) -> None:
    style = _OUTCOME_STYLE[decision.outcome]
    console.print(f"Decision: [{style}]{decision.outcome.value}[/]  {decision.reason}")
    if decision.policy_ids:
        console.print(f"Decided by: {', '.join(decision.policy_ids)}")
    if decision.contact:
        console.print(f"Contact: {decision.contact}")
    if decision.fates:
        table = Table(title="Field groups")
        table.add_column("group", no_wrap=True)
        table.add_column("fate", no_wrap=True)
        for column in ("obligations", "policies", "why"):
            table.add_column(column, overflow="fold")
        for fate in explanation["field_groups"]:
            table.add_row(
                fate["group"],
                "[green]released[/]" if fate["released"] else "[red]withheld[/]",
                ", ".join(fate["obligations"]),
                ", ".join(fate["policy_ids"]),
                fate["reason"],
            )
        console.print(table)
    agreements = Table(title="Agreements")
    agreements.add_column("id")
    agreements.add_column("applies")
    for fit in explanation["agreements"]:
        agreements.add_row(
            fit["id"], "[green]yes[/]" if fit["applies"] else f"no: {fit['why_not']}"
        )
    console.print(agreements)
    console.print(f"Policy set hash: {decision.policy_hash}")


@policy_app.command("explain")
def explain_command(
    principal: Annotated[
        Path,
        typer.Option(
            help="Principal as JSON (user_id, force, roles, vetting...).",
            exists=True,
            dir_okay=False,
        ),
    ],
    record: Annotated[
        Path,
        typer.Option(
            help="Record attributes as JSON (owner_force, kind, classification, handling_code...).",
            exists=True,
            dir_okay=False,
        ),
    ],
    purpose: Annotated[Purpose | None, typer.Option(help="Stated law-enforcement purpose.")] = None,
    case_ref: Annotated[str | None, typer.Option(help="Case or operation reference.")] = None,
    mode: Annotated[Mode, typer.Option(help="Query mode.")] = Mode.RECORDS,
    on: Annotated[
        datetime | None,
        typer.Option(
            help="Evaluation time (ISO 8601, UTC if no zone; default now).",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
        ),
    ] = None,
    policies_dir: Annotated[
        Path,
        typer.Option(
            "--policies",
            help="Policy directory (default: the shipped examples).",
            exists=True,
            file_okay=False,
        ),
    ] = EXAMPLE_POLICY_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Explain the decision for one principal, record and purpose: outcome, each field group's
    fate, which policy decided it and why."""
    console = _console()
    try:
        engine = PolicyEngine.load(policies_dir)
    except PolicyLoadError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(1) from None
    try:
        who = principal_from_mapping(_read_json(principal, "principal"))
        what = record_from_mapping(_read_json(record, "record"))
    except PolicyInputError as exc:
        raise typer.BadParameter(str(exc)) from None
    when = on or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    context = PolicyContext(
        purpose=purpose,
        case_reference=case_ref,
        time=when,
        mode=mode,
        justification_present=True,
        requesting_force=who.force,
    )
    explanation = explain(engine, who, what, context)
    data = explanation.to_json()
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    _render(console, explanation.decision, data)


__all__ = ["policy_app"]
