"""The node's own stores failing under it: disk full, database locked, audit store failing.

Each fault is real (a small tmpfs filled to the last byte, another connection holding SQLite's
write lock), never a mock. While it lasts the node answers 503 problem+json and discloses
nothing; when it clears the node serves again without a restart, and the audit log verifies.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.identity.issuer import mint_analyst_token
from gateway.node import init_node
from gateway.settings import Settings
from schemas.examples import example_record
from tests.gateway.conftest import register_client
from tests.hardening.conftest import (
    HOME_URL,
    federated_node,
    fill_disk,
    small_disk,
    verify_audit_log,
)

# Planted values: none of them may appear in any answer given while a store is failing.
SENTINEL_FAMILY = "Zyxwarbleton"
SENTINEL_PHONE = "+447700900461"


def person(record_id: str) -> dict[str, Any]:
    record = example_record("person", id=record_id, owner_force="20")
    record["body"]["names"][0]["family_name"] = SENTINEL_FAMILY
    return record


class Client:
    def __init__(self, http: TestClient, settings: Settings, client_id: str, secret: str) -> None:
        self.http = http
        self.settings = settings
        self.client_id = client_id
        self.secret = secret
        self._token: str | None = None

    def auth(self) -> dict[str, str]:
        if self._token is None:
            response = self.http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self.secret),
            )
            assert response.status_code == 200, response.text
            self._token = str(response.json()["access_token"])
        return {"Authorization": f"Bearer {self._token}"}

    def put(self, record: dict[str, Any]) -> Any:
        return self.http.put(f"/v1/records/{record['id']}", json=record, headers=self.auth())

    def get(self, record_id: str) -> Any:
        return self.http.get(f"/v1/records/{record_id}", headers=self.auth())

    def search(self) -> Any:
        token = mint_analyst_token(
            self.settings, user_id="analyst-20", roles=("analyst",), vetting="NPPV2"
        )
        return self.http.post(
            "/v1/search",
            json={
                "purpose": "investigation",
                "justification": "Operation Kestrel: linked county line",
                "case_ref": "OP-KESTREL-1",
                "mode": "records",
                "name": SENTINEL_FAMILY,
            },
            headers={"Authorization": f"Bearer {token}"},
        )


def running(settings: Settings) -> Iterator[Client]:
    init_node(settings)
    client_id, secret = register_client(settings, "rms", ["records:write", "records:read"])
    with TestClient(create_app(settings), base_url=HOME_URL, raise_server_exceptions=False) as http:
        yield Client(http, settings, client_id, secret)


def assert_fails_closed(response: Any) -> None:
    """503 problem+json with a retry hint, and not one planted value in the answer."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers.get("retry-after")
    body = response.text
    assert SENTINEL_FAMILY not in body
    assert SENTINEL_PHONE not in body
    assert response.json()["status"] == 503


@pytest.fixture
def node_on_small_disk(tmp_path: Path) -> Iterator[tuple[Client, Path]]:
    """A node whose whole data directory (records, audit, keys) is on a 24 MB tmpfs."""
    with small_disk(tmp_path / "disk", 24) as disk:
        for client in running(federated_node(disk).settings):
            yield client, disk


@pytest.fixture
def node_with_audit_on_small_disk(tmp_path: Path) -> Iterator[tuple[Client, Path]]:
    """A node whose records live on the ordinary disk but whose audit store is on a tmpfs."""
    with small_disk(tmp_path / "audit-disk", 16) as disk:
        audit_url = f"sqlite:///{disk / 'audit.db'}"
        for client in running(federated_node(tmp_path, audit_database_url=audit_url).settings):
            yield client, disk


@pytest.mark.parametrize("fixture", ["node_on_small_disk", "node_with_audit_on_small_disk"])
def test_full_disk_fails_closed_and_recovers_when_space_returns(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    client, disk = request.getfixturevalue(fixture)
    assert client.put(person("p-1")).status_code == 201
    assert client.get("p-1").status_code == 200

    filler = fill_disk(disk)
    try:
        # Writes: nothing stored, nothing half stored.
        assert_fails_closed(client.put(person("p-2")))
        # Reads: the consultation cannot be logged, so the record is not shown.
        assert_fails_closed(client.get("p-1"))
        # Analyst search: the outbound query cannot be logged, so no search is made.
        assert_fails_closed(client.search())
    finally:
        filler.unlink()

    # The fault has cleared: same node, no restart.
    read = client.get("p-1")
    assert read.status_code == 200
    assert read.json()["body"]["names"][0]["family_name"] == SENTINEL_FAMILY
    assert client.get("p-2").status_code == 404, "a refused write must not have landed"
    assert client.put(person("p-2")).status_code == 201
    assert client.search().status_code == 200
    client.http.app.state.node.audit.log.flush()


def test_audit_log_verifies_after_a_disk_full_episode(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 24) as disk:
        settings = federated_node(disk).settings
        for client in running(settings):
            assert client.put(person("p-1")).status_code == 201
            filler = fill_disk(disk)
            try:
                for n in range(5):
                    assert_fails_closed(client.put(person(f"q-{n}")))
            finally:
                filler.unlink()
            assert client.put(person("p-2")).status_code == 201
        # Node stopped (final checkpoint signed): collect p-1, collect p-2, consults, ...
        assert verify_audit_log(settings) >= 2


def test_locked_database_answers_503_then_writes_again_when_released(tmp_path: Path) -> None:
    settings = federated_node(tmp_path).settings
    for client in running(settings):
        assert client.put(person("p-1")).status_code == 201
        holder = sqlite3.connect(settings.data_dir / "node.db", isolation_level=None)
        try:
            # Another process holds SQLite's write lock (a stuck backup or a runaway script).
            holder.execute("BEGIN IMMEDIATE")
            holder.execute("CREATE TABLE IF NOT EXISTS lock_probe (x INTEGER)")
            assert_fails_closed(client.put(person("p-2")))
            # Readers are not blocked by a writer in WAL mode.
            assert client.get("p-1").status_code == 200
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert client.get("p-2").status_code == 404
        assert client.put(person("p-2")).status_code == 201
