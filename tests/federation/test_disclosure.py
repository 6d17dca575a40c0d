"""Two-step disclosure over the federation (`POST /v1/records/{force}/{record_id}/disclose`): the
owning force's shipped policies give a modern slavery case to force 05 redacted, and a Met
record as a pointer only; the owner's disclosure entry says who asked, why, what was released
at which version, what was withheld and for whom, with the justification sealed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx

from audit.entry import RecordRef, decode_entry
from schemas.enums import S62Operation
from schemas.examples import example_record
from tests.federation.conftest import (
    Federation,
    RunningNode,
    member_for,
    node_settings,
    running_federation,
    write_manifest,
)

ASK = {
    "purpose": "investigation",
    "justification": "Operation Larkspur: a victim's trafficker traced across forces",
    "case_ref": "OP-LARKSPUR-7",
}
MET_FAMILY = "Quillfeatherstone"  # planted in the Met's record; must never leave force 01


def three(tmp_path: Path) -> list[Any]:
    settings = [node_settings(tmp_path, f) for f in ("05", "20", "01")]
    write_manifest(settings, [member_for(s) for s in settings])
    return settings


async def disclose(fed: Federation, force: str, record_id: str) -> httpx.Response:
    asker = fed.nodes["05"]
    return await asker.http.post(
        f"/v1/records/{force}/{record_id}/disclose", json=ASK, headers=asker.analyst_headers()
    )


def resolve(document: dict[str, Any], pointer: str) -> Any:
    """The value at a JSON pointer, or KeyError if the record does not hold it."""
    node: Any = document
    for part in pointer.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


async def disclosure_entry(running: RunningNode, index: int) -> tuple[Any, Any]:
    """The owner's entry at `index`, and its sealed payload as the owner's auditors read it."""
    log = running.node.audit.log
    log.flush()
    entry = decode_entry(log.entry(index))
    token = running.settings.auditor_token.get_secret_value()
    response = await running.http.get(
        f"/v1/audit/entries/{index}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return entry, response.json()["sealed_payload"]


def test_a_redacted_disclosure_withholds_fields_and_the_owner_logs_what_and_for_whom(
    tmp_path: Path,
) -> None:
    """Force 20 gives its modern slavery case (stored twice, so at version 2) to 05's analyst
    redacted: the answer lists the withheld fields as JSON pointers, the record lacks every one,
    and 20's disclosure entry names the analyst, purpose, case, record and version, the withheld
    fields and the recipient, with the justification sealed, and is the entry of the receipt."""
    settings = three(tmp_path)
    case = example_record("modern_slavery_case", id="ms-20-1", owner_force="20")
    assert case["body"]["nrm_reference"]

    async def run() -> None:
        async with running_federation(settings) as fed:
            owner = fed.nodes["20"]
            await owner.load([case])
            case["updated_at"] = "2024-04-01T10:00:00Z"  # a second version of the case
            await owner.load([case])

            response = await disclose(fed, "20", "ms-20-1")
            assert response.status_code == 200, response.text
            shown = response.json()
            assert (shown["status"], shown["force"], shown["outcome"]) == ("ok", "20", "redacted")
            assert "/body/nrm_reference" in shown["withheld"]
            record = shown["record"]
            assert record["id"] == "ms-20-1"
            for pointer in shown["withheld"]:
                assert pointer.startswith("/")
                try:
                    resolve(record, pointer)
                except (KeyError, IndexError):
                    continue
                raise AssertionError(f"{pointer} was withheld but is in the record")
            assert case["body"]["nrm_reference"] not in response.text
            assert (record["version"], record["updated_at"]) == (2, "2024-04-01T10:00:00Z")

            entry, sealed = await disclosure_entry(owner, shown["receipt_index"])
            assert entry.kind == S62Operation.DISCLOSE
            assert entry.actor is not None
            assert (entry.actor.user_id, entry.actor.force) == ("analyst-05", "05")
            assert (entry.actor.roles, entry.actor.vetting) == (("analyst",), "NPPV2")
            assert (entry.purpose, entry.case_ref) == ("investigation", "OP-LARKSPUR-7")
            assert entry.records == (RecordRef(force="20", record_id="ms-20-1", version=2),)
            assert list(entry.fields_withheld) == [f"ms-20-1{p}" for p in shown["withheld"]]
            assert entry.recipient_force == "05"
            assert entry.partner_request_id == shown["request_id"]
            assert sealed == {"record_id": "ms-20-1", "justification": ASK["justification"]}
            # Neither the justification nor the withheld value is in the entry's clear fields.
            clear = str(entry.to_json())
            assert ASK["justification"] not in clear
            assert case["body"]["nrm_reference"] not in clear

    anyio.run(run)


def test_a_pointer_disclosure_gives_whom_to_ask_and_no_record(tmp_path: Path) -> None:
    """The Met (01) shares pointers only: asked for one of its person records, it answers with
    whom to contact and no record body; nothing of the record's content reaches 05. Its
    disclosure entry names the record but releases no field."""
    settings = three(tmp_path)
    person = example_record("person", id="p-01-1", owner_force="01")
    person["body"]["names"][0]["family_name"] = MET_FAMILY

    async def run() -> None:
        async with running_federation(settings) as fed:
            await fed.nodes["01"].load([person])
            response = await disclose(fed, "01", "p-01-1")
            assert response.status_code == 200, response.text
            shown = response.json()
            assert (shown["status"], shown["force"], shown["outcome"]) == ("ok", "01", "pointer")
            assert shown["contact"] == "Met Intelligence Bureau (mib-requests@met.police.example)"
            assert shown["record"] is None
            assert shown["withheld"] == []
            assert MET_FAMILY not in response.text

            entry, sealed = await disclosure_entry(fed.nodes["01"], shown["receipt_index"])
            assert entry.kind == S62Operation.DISCLOSE
            assert entry.recipient_force == "05"
            assert [r.record_id for r in entry.records] == ["p-01-1"]
            assert sealed == {"record_id": "p-01-1", "justification": ASK["justification"]}

    anyio.run(run)
