"""Backup and restore of a SQLite node: the restored node's audit log verifies and its records
decrypt with its keys."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.cli import app as cli
from gateway.node import init_node
from gateway.ops.backup import BackupError, backup_node, restore_node, verify_restored
from gateway.settings import Settings
from schemas.examples import example_record
from tests.gateway.conftest import NODE_URL, make_settings, register_client


def token(http: TestClient, client: tuple[str, str]) -> dict[str, str]:
    response = http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=client)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def loaded_node(tmp_path: Path) -> tuple[Settings, tuple[str, str]]:
    settings = make_settings(tmp_path / "node")
    init_node(settings)
    return settings, register_client(settings, "rms", ["records:write", "records:read"])


def test_restored_node_verifies_its_log_and_decrypts_its_records(tmp_path: Path) -> None:
    settings, client = loaded_node(tmp_path)
    data_out, keys_out = tmp_path / "backup" / "data", tmp_path / "vault" / "keys"
    originals: dict[str, dict[str, object]] = {}
    with TestClient(create_app(settings), base_url=NODE_URL) as http:
        headers = token(http, client)
        for n in range(3):
            record = example_record("person", id=f"p-{n}", owner_force="20")
            assert http.put(f"/v1/records/p-{n}", json=record, headers=headers).status_code == 201
            originals[f"p-{n}"] = http.get(f"/v1/records/p-{n}", headers=headers).json()
        # Online: the node is still serving while the backup runs.
        report = backup_node(settings, out=data_out, keys_out=keys_out)
    assert sorted(report.databases) == ["audit.db", "node.db"]
    assert {"kek.json", "node-signing.pem", "audit-keys.json"} <= set(report.key_files)
    assert report.audit_size >= 3
    # Keys and data are apart: nothing key-like sits with the databases.
    assert sorted(p.name for p in data_out.iterdir()) == ["audit.db", "backup.json", "node.db"]
    for path in keys_out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    shutil.rmtree(settings.data_dir)  # the node is lost
    fresh = make_settings(tmp_path / "restored")
    restored = restore_node(fresh, source=data_out, keys_from=keys_out)
    assert "node.db" in restored and "kek.json" in restored

    with TestClient(create_app(fresh), base_url=NODE_URL) as http:
        headers = token(http, client)  # the client registry came back with the database
        for record_id, original in originals.items():
            response = http.get(f"/v1/records/{record_id}", headers=headers)
            assert response.status_code == 200
            assert response.json() == original
        size_after_reads = http.app.state.node.audit.log.size()  # type: ignore[attr-defined]
    assert size_after_reads > report.audit_size

    verdict = verify_restored(fresh, source=data_out)
    assert verdict.ok, verdict
    assert verdict.entries >= size_after_reads


def test_restore_refuses_an_existing_node_and_a_damaged_backup(tmp_path: Path) -> None:
    settings, _client = loaded_node(tmp_path)
    out = tmp_path / "backup"
    backup_node(settings, out=out)
    with pytest.raises(BackupError, match="exists"):
        restore_node(settings, source=out)
    with pytest.raises(BackupError, match="not empty"):
        backup_node(settings, out=out)

    fresh = make_settings(tmp_path / "restored")
    with (out / "node.db").open("r+b") as handle:
        handle.seek(200)
        handle.write(b"\x00tampered\x00")
    with pytest.raises(BackupError, match="checksum"):
        restore_node(fresh, source=out)
    assert not (fresh.data_dir / "node.db").exists()

    other_force = make_settings(tmp_path / "other", force_code="05")
    with pytest.raises(BackupError, match="force 20"):
        restore_node(other_force, source=out)


def test_backup_and_restore_commands(tmp_path: Path) -> None:
    settings, _client = loaded_node(tmp_path)
    env = {
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_FORCE_CODE": "20",
        "GATEWAY_NODE_URL": NODE_URL,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_AUDITOR_TOKEN": "auditor-" + "x" * 32,
    }
    runner = CliRunner()
    out = tmp_path / "backup"
    result = runner.invoke(cli, ["backup", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert "Store the keys apart from the data" in result.output

    env["GATEWAY_DATA_DIR"] = str(tmp_path / "restored")
    result = runner.invoke(cli, ["restore", "--from", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert "audit log verified" in result.output
