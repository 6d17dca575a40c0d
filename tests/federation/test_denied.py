"""The `denied` status in a fan-out: a force whose policy refuses the analyst everything it holds,
and a suspended member the analyst names, are each `denied`, while the others answer `ok`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from audit.entry import SecurityEvent, decode_entry
from schemas.enums import S62Operation
from tests.federation.conftest import (
    member_for,
    node_settings,
    phone,
    running_federation,
    stranger_member,
    write_manifest,
)
from tests.policies.conftest import write_agreement

NUMBER = "+447911123456"
REFUSAL = "Force 01 shares nothing with partner forces while its review is open."
DENY_ALL = f"""
@id("f01.deny_all")
@reason("{REFUSAL}")
forbid (principal, action, resource) unless {{ principal.force == "01" }};
"""


def entries(running: Any) -> list[Any]:
    log = running.node.audit.log
    log.flush()
    return [decode_entry(raw) for raw in log.entries(0, log.size())]


def test_a_force_whose_policy_denies_and_a_suspended_member_are_denied(tmp_path: Path) -> None:
    """Force 01's only agreement with 05 and 20 forbids everything to partners; member 03 is
    suspended in the manifest. The analyst of 05 names all four forces: 01 answers (signed, with
    a receipt) `denied` with its policy's reason and no hit, 03 is `denied` without being asked,
    and 05 and 20 answer `ok` with their hit."""
    policies01 = tmp_path / "policies-01"
    write_agreement(
        policies01,
        "force-01-closed",
        DENY_ALL,
        parties=("01", "05", "20"),
        start="2025-01-01",
        end="2099-12-31",
        review="2099-06-30",
    )
    s05 = node_settings(tmp_path, "05")
    s20 = node_settings(tmp_path, "20")
    s01 = node_settings(tmp_path, "01", policy_dir=policies01)
    suspended = stranger_member("03").model_copy(update={"status": "suspended"})
    write_manifest([s05, s20, s01], [member_for(s) for s in (s05, s20, s01)] + [suspended])

    async def run() -> None:
        async with running_federation([s05, s20, s01]) as fed:
            for force in ("05", "20", "01"):
                await fed.nodes[force].load([phone(force, f"ph-{force}-1", NUMBER)])
            response = await fed.nodes["05"].search(
                mode="records", phone=NUMBER, forces=["05", "20", "01", "03"]
            )
            assert response.status_code == 200, response.text
            results = {r["force"]: r for r in response.json()["results"]}
            assert {f: r["status"] for f, r in results.items()} == {
                "01": "denied",
                "03": "denied",
                "05": "ok",
                "20": "ok",
            }
            assert results["20"]["hits"][0]["record"]["body"]["number"] == NUMBER
            assert results["05"]["hit_count"] == 1
            # 01 answered under its own policy: nothing released, its reason, a receipt.
            assert (results["01"]["hit_count"], results["01"]["hits"]) == (0, [])
            assert results["01"]["detail"] == REFUSAL
            assert results["01"]["receipt_index"] is not None
            [disclosed] = [e for e in entries(fed.nodes["01"]) if e.kind == S62Operation.DISCLOSE]
            assert disclosed.recipient_force == "05"
            assert "denied" in (disclosed.decision or "")
            assert disclosed.records == ()
            # 03 was never asked: refused on the manifest's word.
            assert results["03"]["detail"] == "member suspended"
            assert results["03"]["receipt_index"] is None
            [done] = [
                e for e in entries(fed.nodes["05"]) if e.kind == SecurityEvent.SEARCH_COMPLETED
            ]
            assert sorted(r["force"] for r in done.receipts) == ["01", "20"]

    anyio.run(run)
