"""`gateway demo` (and `make demo`): a scripted walk-through on a local three-force federation.

Each step prints what happened and checks it against what should happen; the demo exits 0 only
if every step gave the expected outcome, so it doubles as an end-to-end smoke test.

Forces: 05 Merseyside (exporting county lines), 20 West Midlands (importing), 01 Metropolitan
(shares pointers only). Data: synthetic, with planted cross-force links (gateway synth).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from gateway.identity.issuer import mint_analyst_token
from gateway.up import AUDITOR_TOKEN, Federation, Processes, import_data, prepare, running

FORCES = ["05", "20", "01"]
CASE = "OP-DEMO-2026-17"


@dataclass
class Step:
    title: str
    ok: bool = False
    detail: str = ""


@dataclass
class Demo:
    fed: Federation
    procs: Processes
    console: Console
    truth: dict[str, Any]
    steps: list[Step] = field(default_factory=list)

    def token(
        self, force: str, *, vetting: str = "NPPV2", roles: tuple[str, ...] = ("analyst",)
    ) -> str:
        return mint_analyst_token(
            self.fed.node(force).settings(self.fed.workdir),
            user_id=f"demo-{'-'.join(roles)}-{force}",
            roles=list(roles),
            vetting=vetting,
        )

    def post(self, force: str, path: str, body: dict[str, Any], token: str) -> httpx.Response:
        with httpx.Client(base_url=self.fed.node(force).url, timeout=30) as client:
            return client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})

    def search(self, force: str, token: str, **body: Any) -> httpx.Response:
        payload = {
            "purpose": "investigation",
            "justification": "Demo: county line enquiry for Operation Demo",
            "case_ref": CASE,
            "mode": "hits",
            **body,
        }
        return self.post(force, "/v1/search", payload, token)

    def check(self, title: str, run: Callable[[Step], None]) -> None:
        step = Step(title)
        self.console.rule(f"[bold]{len(self.steps) + 1}. {title}")
        try:
            run(step)
        except Exception as exc:  # a demo step must report, not crash the walk-through
            step.ok = False
            step.detail = f"{type(exc).__name__}: {exc}"
        self.steps.append(step)
        mark = "[bold green]as expected[/]" if step.ok else "[bold red]NOT as expected[/]"
        self.console.print(f"{mark} — {step.detail}")


def results_table(body: dict[str, Any]) -> Table:
    table = Table(title=f"request {body.get('request_id', '?')} ({body.get('mode')})")
    for column in ("force", "status", "hits", "decision", "detail", "ms"):
        table.add_column(column)
    for result in body.get("results", []):
        table.add_row(
            result["force"],
            result["status"],
            # A force that examined only part of its candidates may hold more hits.
            f"{result.get('hit_count', 0)}{' (truncated)' if result.get('truncated') else ''}",
            str(result.get("decision") or ""),
            str(result.get("detail") or "")[:60],
            f"{result.get('elapsed_ms') or 0:.0f}",
        )
    return table


def _by_force(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["force"]: r for r in body.get("results", [])}


def step_deal_line_hits(demo: Demo, state: dict[str, Any]) -> Callable[[Step], None]:
    def run(step: Step) -> None:
        link = next(
            link
            for link in demo.truth["links"]
            if link["type"] == "deal_line"
            and link["detail"]["exporting_force"] == "05"
            and "20" in link["forces"]
        )
        number = link["identifier"]
        demo.console.print(
            f"An analyst in West Midlands (20, importing) searches deal line {number} "
            "in hits mode (Prüm step 1: counts and references, no personal data)."
        )
        response = demo.search("20", demo.token("20"), phone=number)
        body = response.json()
        demo.console.print(results_table(body))
        merseyside = _by_force(body).get("05", {})
        # Disclose an intelligence report when one matched (its grading and any handling
        # conditions are what the receiving analyst must see), else the first hit.
        ids = [h.get("record_id") for h in merseyside.get("hits", []) if h.get("record_id")]
        reports = [i for i in ids if "-IR-" in i]
        state["hit"] = (reports or ids or [None])[0]
        step.ok = (
            response.status_code == 200
            and merseyside.get("status") == "ok"
            and merseyside.get("hit_count", 0) >= 1
            and all("body" not in json.dumps(h) for h in merseyside.get("hits", []))
        )
        step.detail = (
            f"Merseyside (05) holds {merseyside.get('hit_count', 0)} hit(s) for the number"
        )

    return run


def step_disclose(demo: Demo, state: dict[str, Any]) -> Callable[[Step], None]:
    def run(step: Step) -> None:
        record_id = state.get("hit")
        if not record_id:
            step.detail = "no hit to disclose (step 1 failed)"
            return
        demo.console.print(
            f"The analyst asks Merseyside to disclose {record_id}, stating purpose and case."
        )
        response = demo.post(
            "20",
            f"/v1/records/05/{record_id}/disclose",
            {
                "purpose": "investigation",
                "justification": "Deal line active in Birmingham; identify the line holder",
                "case_ref": CASE,
            },
            demo.token("20"),
        )
        body = response.json()
        record = body.get("record") or {}
        grading = record.get("grading") or {}
        demo.console.print(
            Panel(
                json.dumps(
                    {
                        "outcome": body.get("outcome"),
                        "kind": record.get("kind"),
                        "classification": record.get("classification"),
                        "grading": grading,
                        "withheld": body.get("withheld"),
                        "body": record.get("body"),
                    },
                    indent=1,
                )[:1800],
                title=f"disclosed by 05 (audit receipt index {body.get('receipt_index')})",
            )
        )
        if grading.get("handling") == "C":
            demo.console.print(
                f"[yellow]Handling code C — conditions travel with the record:[/] "
                f"{grading.get('conditions')} (release to: {grading.get('condition_forces')})"
            )
        else:
            demo.console.print("Handling code P: lawful sharing permitted, no conditions attached.")
        step.ok = response.status_code == 200 and body.get("outcome") in {"redacted", "full"}
        step.detail = (
            f"outcome {body.get('outcome')}; fields withheld: "
            f"{len(body.get('withheld') or [])}; grading {grading.get('source_evaluation')}/"
            f"{grading.get('assessment')}/{grading.get('handling')} travels with the record"
        )

    return run


def step_name_variant(demo: Demo, state: dict[str, Any]) -> Callable[[Step], None]:
    def run(step: Step) -> None:
        for link in demo.truth["links"]:
            if link["type"] != "person_variant" or not {"05", "20"} <= set(link["forces"]):
                continue
            names = link["detail"]["names"]
            variant = next((n for n in names if n["force"] == "05"), names[0])
            query = f"{variant['given_names']} {variant['family_name']}"
            break
        else:
            step.detail = "no planted person variant spans forces 05 and 20"
            return
        dob = link["detail"]["date_of_birth"]
        spellings = ", ".join(
            f"{n['given_names']} {n['family_name']} ({n['force']})" for n in names
        )
        demo.console.print(f"Planted spellings: {spellings}; date of birth {dob}.")
        demo.console.print(f"The analyst searches '{query}' with that date of birth.")
        response = demo.search("20", demo.token("20"), name=query, dob=dob)
        body = response.json()
        demo.console.print(results_table(body))
        forces_with_hits = sorted(f for f, r in _by_force(body).items() if r.get("hit_count"))
        step.ok = response.status_code == 200 and len(forces_with_hits) >= 2
        step.detail = f"matches in forces {', '.join(forces_with_hits)}"

    return run


def step_refusals(demo: Demo, state: dict[str, Any]) -> Callable[[Step], None]:
    def run(step: Step) -> None:
        number = next(
            link["identifier"] for link in demo.truth["links"] if link["type"] == "deal_line"
        )
        demo.console.print("An analyst with only NPPV1 vetting searches the same deal line.")
        low = demo.search(
            "20", demo.token("20", vetting="NPPV1"), phone=number, mode="records"
        ).json()
        demo.console.print(results_table(low))
        statuses = {r["status"] for r in low.get("results", [])}
        reasons = {r.get("detail") for r in low.get("results", []) if r.get("detail")}
        demo.console.print("An analyst sends the search without a purpose.")
        no_purpose = demo.post(
            "20",
            "/v1/search",
            {"justification": "x", "case_ref": CASE, "phone": number},
            demo.token("20"),
        )
        problem = no_purpose.json()
        demo.console.print(
            f"HTTP {no_purpose.status_code}: {problem.get('title')} — "
            f"{[e.get('pointer') for e in problem.get('errors', [])]}"
        )
        step.ok = (
            "ok" not in statuses or all(r.get("hit_count", 0) == 0 for r in low["results"])
        ) and no_purpose.status_code == 422
        step.detail = (
            f"low vetting: statuses {sorted(statuses)}"
            + (f", reason: {sorted(reasons)[0]}" if reasons else "")
            + f"; no purpose: HTTP {no_purpose.status_code}"
        )

    return run


def step_partner_down(demo: Demo, state: dict[str, Any]) -> Callable[[Step], None]:
    def run(step: Step) -> None:
        demo.console.print("The Met's node (01) is stopped; the analyst searches again.")
        demo.procs.stop("01")
        number = next(
            link["identifier"]
            for link in demo.truth["links"]
            if link["type"] == "deal_line" and link["detail"]["exporting_force"] == "05"
        )
        started = time.monotonic()
        body = demo.search("20", demo.token("20"), phone=number).json()
        elapsed = time.monotonic() - started
        demo.console.print(results_table(body))
        by_force = _by_force(body)
        step.ok = (
            by_force.get("01", {}).get("status") == "unreachable"
            and by_force.get("05", {}).get("status") == "ok"
        )
        step.detail = (
            f"partial results in {elapsed:.2f} s; 01 is {by_force.get('01', {}).get('status')}"
        )
        demo.procs.start("01")
        demo.procs.wait_ready("01")

    return run


def _cli(demo: Demo, force: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **demo.fed.node(force).env(demo.fed.workdir)}
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "gateway", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def step_audit(demo: Demo, state: dict[str, Any]) -> Callable[[Step], None]:
    def run(step: Step) -> None:
        outcomes = []
        for force in ("05", "20"):
            spec = demo.fed.node(force)
            out = demo.fed.workdir / f"audit-{force}.ndjson"
            exported = _cli(
                demo,
                force,
                "audit",
                "export",
                "--out",
                str(out),
                "--url",
                spec.url,
                "--token",
                AUDITOR_TOKEN,
            )
            with httpx.Client(base_url=spec.url) as client:
                vkey = client.get("/v1/audit/checkpoint").headers["X-Verifier-Key"]
            verified = _cli(demo, force, "audit", "verify", str(out), "--key", vkey)
            lines = sum(1 for _ in out.open("rb")) if out.exists() else 0
            said = verified.stdout.strip().splitlines() or [verified.stderr[-200:]]
            demo.console.print(f"force {force}: exported {lines} entries; verify: {said[-1]}")
            outcomes.append(exported.returncode == 0 and verified.returncode == 0)
        reconciled = _cli(demo, "20", "audit", "reconcile")
        demo.console.print(reconciled.stdout.strip()[-1500:] or reconciled.stderr[-500:])
        outcomes.append(reconciled.returncode == 0)
        step.ok = all(outcomes)
        step.detail = (
            "both logs verify offline against their signed checkpoints; every partner receipt "
            "in force 20's log is proven in the partner's log"
            if step.ok
            else f"export/verify/reconcile results: {outcomes}"
        )

    return run


def run_demo(*, workdir: Path, records: int, console: Console) -> bool:
    started = time.monotonic()
    console.print(Panel("Police data-sharing gateway — local demo (forces 05, 20, 01)"))
    fed = prepare(workdir, FORCES, records, log=console.print)
    truth = json.loads((fed.workdir / "synthetic" / "ground_truth.json").read_text())
    with running(fed) as procs:
        import_data(fed, log=console.print)
        demo = Demo(fed=fed, procs=procs, console=console, truth=truth)
        state: dict[str, Any] = {}
        demo.check("Deal-line search in hits mode", step_deal_line_hits(demo, state))
        demo.check("Disclosure with purpose and case reference", step_disclose(demo, state))
        demo.check("Suspect's name with a spelling variant", step_name_variant(demo, state))
        demo.check("Refused without vetting or purpose", step_refusals(demo, state))
        demo.check("A partner node is down", step_partner_down(demo, state))
        demo.check("Auditor exports, verifies and reconciles", step_audit(demo, state))
    summary = Table(title=f"demo summary ({time.monotonic() - started:.0f} s)")
    summary.add_column("step")
    summary.add_column("result")
    for i, step in enumerate(demo.steps, 1):
        summary.add_row(f"{i}. {step.title}", "[green]ok[/]" if step.ok else "[red]FAILED[/]")
    console.print(summary)
    return all(step.ok for step in demo.steps)
