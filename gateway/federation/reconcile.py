"""`gateway audit reconcile`: check every partner receipt in this log against the partner's log.

For each partner named in a receipt:
1. fetch its latest checkpoint, verify its signature under the manifest's log key, and witness it
   (consistent with the last checkpoint this node cosigned for that partner, then cosigned);
2. for each receipt: the receipt's own checkpoint must be a prefix of the witnessed one
   (consistency proof), and the entry must be in the witnessed tree with the receipt's leaf hash
   (inclusion proof and the entry's hash as the partner stores it now).
Any entry the partner no longer has, or has with other content, is reported by force and index.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import typer

from audit.checkpoint import Checkpoint
from audit.entry import SecurityEvent, decode_entry
from audit.errors import AuditError
from audit.merkle import verify_consistency, verify_inclusion
from gateway.federation.manifest import Member
from gateway.federation.members import manifest_of
from gateway.federation.tables import ReconcileResultRow, WitnessStateRow
from gateway.federation.witness import WitnessError, cosign_checkpoint, verify_partner_checkpoint
from gateway.node import Node


@dataclass(frozen=True)
class ReceiptProblem:
    force: str
    index: int
    problem: str  # missing | mismatched | unverifiable
    detail: str


@dataclass
class ReconcileReport:
    checked: int = 0
    problems: list[ReceiptProblem] = field(default_factory=list)
    witnessed: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _receipts(node: Node) -> list[dict[str, Any]]:
    log = node.audit.log
    size = log.size()
    found: list[dict[str, Any]] = []
    for start in range(0, size, 1000):
        for raw in log.entries(start, min(size, start + 1000)):
            entry = decode_entry(raw)
            if entry.kind is SecurityEvent.SEARCH_COMPLETED:
                found.extend(dict(r) for r in entry.receipts)
    return found


async def _get_json(http: httpx.AsyncClient, url: str, **params: int) -> dict[str, Any] | None:
    response = await http.get(url, params=params)
    if response.status_code != 200:
        return None
    data = response.json()
    return data if isinstance(data, dict) else None


async def _witness(node: Node, http: httpx.AsyncClient, member: Member) -> Checkpoint:
    base = member.node_url.rstrip("/")
    response = await http.get(f"{base}/federation/v1/checkpoint")
    response.raise_for_status()
    note = response.text
    checkpoint = verify_partner_checkpoint(member, note)
    async with node.db.sessions() as session:
        state = await session.get(WitnessStateRow, member.force_code)
        old = state.size if state is not None else 0
    proof: list[bytes] = []
    if old:
        data = await _get_json(
            http, f"{base}/v1/audit/proof/consistency", **{"from": old, "to": checkpoint.size}
        )
        if data is None:
            raise WitnessError(409, "the partner gave no consistency proof")
        proof = [bytes.fromhex(p) for p in data["proof"]]
    await cosign_checkpoint(node, member, old, proof, note)
    return checkpoint


async def _check_force(
    node: Node,
    http: httpx.AsyncClient,
    member: Member,
    receipts: list[dict[str, Any]],
    report: ReconcileReport,
) -> None:
    force = member.force_code
    base = member.node_url.rstrip("/")
    try:
        head = await _witness(node, http, member)
    except (AuditError, WitnessError, httpx.HTTPError, ValueError, KeyError) as exc:
        for receipt in receipts:
            report.problems.append(
                ReceiptProblem(force, int(receipt["index"]), "unverifiable", str(exc))
            )
        return
    report.witnessed[force] = head.size
    for receipt in receipts:
        index = int(receipt["index"])
        report.checked += 1
        try:
            # 1. The receipt's checkpoint is a prefix of the witnessed head.
            own = verify_partner_checkpoint(member, str(receipt["checkpoint"]))
            if own.size > head.size:
                raise AuditError("the receipt's checkpoint is newer than the partner's head")
            if own.size < head.size:
                data = await _get_json(
                    http,
                    f"{base}/v1/audit/proof/consistency",
                    **{"from": own.size, "to": head.size},
                )
                if data is None:
                    raise AuditError("no consistency proof from the receipt's checkpoint")
                verify_consistency(
                    own.size,
                    head.size,
                    [bytes.fromhex(p) for p in data["proof"]],
                    own.root_hash,
                    head.root_hash,
                )
            # 2. The entry is in the head with the hash the receipt holds.
            leaf = bytes.fromhex(str(receipt["leaf_hash"]))
            proof = await _get_json(
                http, f"{base}/federation/v1/proof/inclusion", index=index, size=head.size
            )
            if proof is None:
                report.problems.append(
                    ReceiptProblem(force, index, "missing", "the partner no longer has the entry")
                )
                continue
            if proof["leaf_hash"] != leaf.hex():
                report.problems.append(
                    ReceiptProblem(force, index, "mismatched", "the stored entry has changed")
                )
                continue
            verify_inclusion(
                leaf, index, head.size, [bytes.fromhex(p) for p in proof["proof"]], head.root_hash
            )
        except (AuditError, ValueError, KeyError, httpx.HTTPError) as exc:
            report.problems.append(ReceiptProblem(force, index, "mismatched", str(exc)))


async def reconcile_receipts(
    node: Node, *, transport: httpx.AsyncBaseTransport | None = None
) -> ReconcileReport:
    """Check every receipt in this node's log; the report names each missing or changed entry."""
    report = ReconcileReport()
    receipts = await asyncio.to_thread(_receipts, node)
    by_force: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for receipt in receipts:
        by_force[str(receipt.get("force"))].append(receipt)
    holder = manifest_of(node)
    async with httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(node.settings.partner_deadline_seconds * 5)
    ) as http:
        for force, items in sorted(by_force.items()):
            member = holder.member(force) if holder is not None else None
            if member is None:
                for receipt in items:
                    report.problems.append(
                        ReceiptProblem(
                            force, int(receipt["index"]), "unverifiable", "not in the manifest"
                        )
                    )
                continue
            await _check_force(node, http, member, items, report)
    await _store_results(node, by_force, report)
    return report


async def _store_results(
    node: Node, by_force: dict[str, list[dict[str, Any]]], report: ReconcileReport
) -> None:
    """Keep each partner's outcome, so the console can show the last reconcile per partner."""
    now = datetime.now(UTC)
    async with node.db.sessions() as session:
        for force, items in sorted(by_force.items()):
            problems = [p for p in report.problems if p.force == force]
            first = problems[0] if problems else None
            session.add(
                ReconcileResultRow(
                    force=force,
                    checked=len(items),
                    problems=len(problems),
                    witnessed_size=report.witnessed.get(force),
                    first_problem=(
                        f"{first.problem} at entry {first.index}: {first.detail}"[:300]
                        if first
                        else None
                    ),
                    ran_at=now,
                )
            )
        await session.commit()


def reconcile_command() -> None:
    """Check every partner receipt in this node's audit log against the partner's log."""
    from rich.console import Console

    from gateway.node import open_node
    from gateway.settings import Settings

    console = Console()

    async def run() -> ReconcileReport:
        node = await open_node(Settings())
        try:
            return await reconcile_receipts(node)
        finally:
            await node.close()

    report = asyncio.run(run())
    for force, size in sorted(report.witnessed.items()):
        console.print(f"force {force}: log witnessed at size {size}")
    for problem in report.problems:
        console.print(
            f"[red]{problem.problem}[/]: force {problem.force} entry {problem.index} "
            f"({problem.detail})"
        )
    if not report.ok:
        console.print(f"[red]reconcile failed[/]: {len(report.problems)} of the receipts")
        raise typer.Exit(code=1)
    console.print(f"[green]reconcile passed[/]: {report.checked} receipts")
