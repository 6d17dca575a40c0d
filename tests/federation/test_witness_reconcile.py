"""Witness cosigning, fork detection, and `gateway audit reconcile` against partners' logs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import anyio

from audit.checkpoint import Checkpoint, SignedNote, sign_checkpoint
from gateway.federation.members import witness_name
from gateway.federation.protocol import SIGNATURE_HEADER, sign_request
from gateway.federation.reconcile import reconcile_receipts
from gateway.federation.witness import collect_cosignatures, cosigned_by, forks
from tests.federation.conftest import (
    Federation,
    member_for,
    node_settings,
    phone,
    running_federation,
    write_manifest,
)

NUMBER = "+447911123456"


def three(tmp_path: Path) -> list:
    settings = [node_settings(tmp_path, f) for f in ("05", "20", "01")]
    write_manifest(settings, [member_for(s) for s in settings])
    return settings


async def searched(fed: Federation, times: int = 1) -> None:
    await fed.nodes["20"].load([phone("20", "ph-20-1", NUMBER)])
    await fed.nodes["01"].load([phone("01", "ph-01-1", NUMBER)])
    for _ in range(times):
        response = await fed.nodes["05"].search(mode="records", phone=NUMBER)
        assert response.status_code == 200, response.text
        assert {r["status"] for r in response.json()["results"]} == {"ok"}


def test_partners_cosign_consistent_checkpoints_and_catch_a_fork(tmp_path: Path) -> None:
    settings = three(tmp_path)

    async def run() -> None:
        async with running_federation(settings) as fed:
            n05 = fed.nodes["05"]
            runtime = n05.app.state.federation
            first = await collect_cosignatures(n05.node, runtime.client)
            assert sorted((r.witness, r.error) for r in first) == [("01", None), ("20", None)]
            await searched(fed)
            second = await collect_cosignatures(n05.node, runtime.client)
            assert all(r.error is None for r in second), second
            assert all(r.size and r.size > (first[0].size or 0) for r in second)
            # The cosignature verifies under the witness's published key.
            from gateway.federation.witness import latest_cosigned

            rows = await latest_cosigned(n05.node)
            member20 = n05.node.manifest.member("20")
            note20 = next(r.note for r in rows if r.witness_force == "20")
            assert cosigned_by(member20, note20) is not None
            assert witness_name("20") in note20

            # Node 05 signs a second tree of the same size with another root: a fork.
            size = Checkpoint.parse_body(SignedNote.parse(note20).text).size
            forged = sign_checkpoint(
                Checkpoint(n05.settings.log_origin, size, b"\x01" * 32),
                n05.settings.log_origin,
                n05.node.signing_key.private_key,
            ).to_text()
            body = json.dumps({"old_size": size, "proof": [], "checkpoint": forged}).encode()
            token = sign_request(
                n05.node.signing_key,
                sender="05",
                audience="20",
                method="POST",
                path="/federation/v1/cosign",
                body=body,
            )
            response = await fed.nodes["20"].http.post(
                "/federation/v1/cosign", content=body, headers={SIGNATURE_HEADER: token}
            )
            assert response.status_code == 409, response.text
            assert response.json()["fork"] is True
            evidence = await forks(fed.nodes["20"].node)
            assert [(e.force, e.size) for e in evidence] == [("05", size)]

    anyio.run(run)


def test_reconcile_passes_then_names_the_entry_a_rogue_dba_deleted(tmp_path: Path) -> None:
    settings = three(tmp_path)

    async def run() -> None:
        async with running_federation(settings) as fed:
            await searched(fed, times=2)
            node05 = fed.nodes["05"].node
            report = await reconcile_receipts(node05, transport=fed.routing)
            assert report.ok, report.problems
            assert report.checked == 4
            assert set(report.witnessed) == {"01", "20"}

            # A rogue DBA on node 20 drops the append-only trigger and deletes one disclosure.
            receipts = [r for r in _receipts(fed) if r["force"] == "20"]
            victim = receipts[0]["index"]
            db = sqlite3.connect(fed.nodes["20"].settings.data_dir / "audit.db")
            db.execute("DROP TRIGGER audit_entries_no_delete")
            db.execute("DELETE FROM audit_entries WHERE idx = ?", (victim,))
            db.commit()
            db.close()

            report = await reconcile_receipts(node05, transport=fed.routing)
            assert not report.ok
            named = {(p.force, p.index) for p in report.problems}
            assert ("20", victim) in named
            assert all(p.force == "20" for p in report.problems)

            # Each run's outcome per partner is kept for the auditor console.
            from sqlmodel import select

            from gateway.federation.tables import ReconcileResultRow

            async with node05.db.sessions() as session:
                rows = (await session.execute(select(ReconcileResultRow))).scalars().all()
            outcome = [(r.force, r.checked, r.problems > 0) for r in rows]
            assert outcome == [
                ("01", 2, False),
                ("20", 2, False),
                ("01", 2, False),
                ("20", 2, True),
            ]
            assert str(victim) in (rows[-1].first_problem or "")

    anyio.run(run)


def _receipts(fed: Federation) -> list[dict]:
    from audit.entry import SecurityEvent, decode_entry

    log = fed.nodes["05"].node.audit.log
    found: list[dict] = []
    for raw in log.entries(0, log.size()):
        entry = decode_entry(raw)
        if entry.kind == SecurityEvent.SEARCH_COMPLETED:
            found.extend(dict(r) for r in entry.receipts)
    return found
