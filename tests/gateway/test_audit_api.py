"""The auditors' API and offline tools against a real node's log."""

from __future__ import annotations

import base64

from typer.testing import CliRunner

from audit import verify_consistency, verify_inclusion
from audit.checkpoint import VerifierKey, verify_checkpoint
from gateway.cli import app
from schemas.examples import example_record
from tests.gateway.conftest import NodeClient


def auditor(node: NodeClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.settings.auditor_token.get_secret_value()}"}


def load_some(node: NodeClient, n: int = 6) -> None:
    headers = node.auth()
    for i in range(n):
        record = example_record("person", id=f"p-{i}", owner_force="20")
        assert node.http.put(f"/v1/records/p-{i}", json=record, headers=headers).status_code == 201


def test_audit_api_needs_the_auditor_token_and_audits_failures(node: NodeClient) -> None:
    assert node.http.get("/v1/audit/entries").status_code == 401
    bad = node.http.get("/v1/audit/entries", headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    page = node.http.get("/v1/audit/entries?operation=auth_failure", headers=auditor(node))
    assert len(page.json()["entries"]) == 2


def test_entries_filter_and_paginate_newest_first(node: NodeClient) -> None:
    load_some(node)
    headers = auditor(node)
    collects = node.http.get("/v1/audit/entries?operation=collect&limit=4", headers=headers).json()
    assert len(collects["entries"]) == 4
    indexes = [e["index"] for e in collects["entries"]]
    assert indexes == sorted(indexes, reverse=True)
    rest = node.http.get(
        f"/v1/audit/entries?operation=collect&limit=4&cursor={collects['next_cursor']}",
        headers=headers,
    ).json()
    assert len(rest["entries"]) == 2 and rest["next_cursor"] is None
    by_record = node.http.get("/v1/audit/entries?record_id=p-3", headers=headers).json()
    assert [e["entry"]["records"][0]["record_id"] for e in by_record["entries"]] == ["p-3"]
    # Each read of the log is itself logged.
    accesses = node.http.get(
        "/v1/audit/entries?operation=audit_access&limit=100", headers=headers
    ).json()
    assert len(accesses["entries"]) >= 3


def test_entry_checkpoint_and_proofs_verify_independently(node: NodeClient) -> None:
    load_some(node)
    headers = auditor(node)
    # The background signer runs once a second; sign now rather than wait for it.
    node.http.app.state.node.audit.log.checkpoint()
    response = node.http.get("/v1/audit/checkpoint")
    assert response.status_code == 200
    vkey = VerifierKey.parse(response.headers["x-verifier-key"])
    checkpoint = verify_checkpoint(response.text, vkey.name, vkey.name, vkey.public_key)
    assert checkpoint.size >= 1
    entry = node.http.get("/v1/audit/entries/0", headers=headers).json()
    proof = node.http.get(f"/v1/audit/proof/inclusion?index=0&size={checkpoint.size}").json()
    assert proof["leaf_hash"] == entry["leaf_hash"]
    verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        0,
        checkpoint.size,
        [bytes.fromhex(p) for p in proof["proof"]],
        checkpoint.root_hash,
    )
    size = node.http.app.state.node.audit.log.size()
    consistency = node.http.get(f"/v1/audit/proof/consistency?from=1&to={size}").json()
    verify_consistency(
        1,
        size,
        [bytes.fromhex(p) for p in consistency["proof"]],
        bytes.fromhex(consistency["old_root"]),
        bytes.fromhex(consistency["new_root"]),
    )
    assert node.http.get("/v1/audit/proof/inclusion?index=5&size=2").status_code == 400
    assert node.http.get(f"/v1/audit/entries/{size + 100}", headers=headers).status_code == 404


def test_export_over_http_verifies_with_the_cli(node: NodeClient, tmp_path) -> None:
    load_some(node)
    response = node.http.get("/v1/audit/export", headers=auditor(node))
    assert response.status_code == 200
    export = tmp_path / "log.ndjson"
    export.write_bytes(response.content)
    note = base64.b64decode(response.headers["x-checkpoint"]).decode()
    (tmp_path / "log.ndjson.checkpoint").write_text(note)
    vkey = node.http.get("/v1/audit/checkpoint").headers["x-verifier-key"]
    result = CliRunner().invoke(app, ["audit", "verify", str(export), "--key", vkey])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output
    lines = export.read_bytes().splitlines(keepends=True)
    tampered = tmp_path / "tampered.ndjson"
    tampered.write_bytes(b"".join(lines[:2] + lines[3:]))
    (tmp_path / "tampered.ndjson.checkpoint").write_text(note)
    bad = CliRunner().invoke(app, ["audit", "verify", str(tampered), "--key", vkey])
    assert bad.exit_code == 1
    assert "index 2" in bad.output


def test_sealed_payload_opens_for_the_auditor(node: NodeClient) -> None:
    audit = node.http.app.state.node.audit
    import anyio

    from audit.entry import Actor
    from schemas.enums import S62Operation

    async def write() -> int:
        receipt = await audit.record(
            S62Operation.CONSULT,
            actor=Actor(user_id="u1", force="20"),
            purpose="investigation",
            request_id="req-12345678",
            sealed={"terms": {"phone": "+447911123456"}, "justification": "Op Alpha lead"},
        )
        return receipt.index

    index = anyio.run(write)
    entry = node.http.get(f"/v1/audit/entries/{index}", headers=auditor(node)).json()
    assert entry["sealed_payload"]["justification"] == "Op Alpha lead"
    assert "Op Alpha" not in str(entry["entry"])
