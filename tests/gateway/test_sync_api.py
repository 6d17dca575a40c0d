"""The force systems' sync API against a real node: crypto, blind indexes, audit, feed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from typing import Any

import psycopg
import pytest

from audit.entry import decode_entry
from gateway.keys.errors import CiphertextError, KekError
from gateway.keys.fields import FieldCipher, is_field_ciphertext
from gateway.keys.provider import WrappedKey
from schemas.examples import example_record
from tests.gateway.conftest import NodeClient


def person(record_id: str, family: str = "Okonkwo", force: str = "20", **extra: Any) -> dict:
    record = example_record("person", id=record_id, owner_force=force, **extra)
    record["body"]["names"][0]["family_name"] = family
    return record


def is_postgres(node: NodeClient) -> bool:
    return node.settings.resolved_database_url.startswith("postgresql")


def raw_rows(node: NodeClient, sql: str) -> list[tuple[Any, ...]]:
    """Rows read straight from the database, bypassing the node (as an intruder would)."""
    if is_postgres(node):
        url = node.settings.resolved_database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    with sqlite3.connect(node.settings.data_dir / "node.db") as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def database_bytes(node: NodeClient) -> dict[str, bytes]:
    """Everything the node's databases hold at rest: SQLite files, or a PostgreSQL dump."""
    if is_postgres(node):
        url = node.settings.resolved_database_url.replace("postgresql+psycopg://", "postgresql://")
        dump = subprocess.run(["pg_dump", url], capture_output=True, check=True).stdout
        return {"pg_dump": dump}
    return {p.name: p.read_bytes() for p in node.settings.data_dir.glob("*.db*")}


def audit_kinds(node: NodeClient) -> list[str]:
    log = node.http.app.state.node.audit.log
    log.flush()
    return [str(decode_entry(e).kind) for e in log.entries(0, log.size())]


def test_client_credentials_issue_a_token(node: NodeClient) -> None:
    response = node.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(node.client_id, node.secret),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] > 0
    assert response.headers["cache-control"] == "no-store"


def test_wrong_secret_is_refused_and_five_failures_lock_the_client(node: NodeClient) -> None:
    for _ in range(5):
        bad = node.http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(node.client_id, "wrong-secret"),
        )
        assert bad.status_code == 401
        assert bad.json()["error"] == "invalid_client"
        assert bad.headers["content-type"].startswith("application/problem+json")
    locked = node.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(node.client_id, node.secret),
    )
    assert locked.status_code == 401
    assert "locked" in locked.json()["detail"]
    assert audit_kinds(node).count("auth_failure") >= 6


def test_unknown_client_and_bad_grant_are_refused(node: NodeClient) -> None:
    unknown = node.http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("cli_nobody", "x")
    )
    assert unknown.status_code == 401
    bad_grant = node.http.post(
        "/oauth/token", data={"grant_type": "password"}, auth=(node.client_id, node.secret)
    )
    assert bad_grant.status_code == 400
    assert bad_grant.json()["error"] == "unsupported_grant_type"


def test_calls_without_a_valid_token_are_401_and_audited(node: NodeClient) -> None:
    none = node.http.get("/v1/records/x-1")
    assert none.status_code == 401
    assert none.headers["content-type"].startswith("application/problem+json")
    forged = node.http.get("/v1/records/x-1", headers={"Authorization": "Bearer a.b.c"})
    assert forged.status_code == 401
    assert audit_kinds(node).count("auth_failure") == 2


def test_scopes_are_enforced(node: NodeClient) -> None:
    read_only = node.auth("records:read")
    response = node.http.put("/v1/records/p-1", json=person("p-1"), headers=read_only)
    assert response.status_code == 403


def test_put_creates_then_replaces_with_etags(any_node: NodeClient) -> None:
    node = any_node
    headers = node.auth()
    record = person("p-1")
    created = node.http.put("/v1/records/p-1", json=record, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json() == {"record_id": "p-1", "version": 1, "status": "created"}
    assert created.headers["etag"] == '"1"'

    same = node.http.put("/v1/records/p-1", json=record, headers=headers)
    assert same.json()["status"] == "unchanged"

    record["body"]["names"][0]["family_name"] = "Okonkwo-Smith"
    stale = node.http.put("/v1/records/p-1", json=record, headers={**headers, "If-Match": '"7"'})
    assert stale.status_code == 412
    replaced = node.http.put("/v1/records/p-1", json=record, headers={**headers, "If-Match": '"1"'})
    assert replaced.status_code == 200
    assert replaced.json() == {"record_id": "p-1", "version": 2, "status": "replaced"}

    back = node.http.get("/v1/records/p-1", headers=headers)
    assert back.status_code == 200
    assert back.headers["etag"] == '"2"'
    assert back.json()["body"]["names"][0]["family_name"] == "Okonkwo-Smith"
    assert back.json()["version"] == 2
    assert audit_kinds(node).count("collect") == 1
    assert audit_kinds(node).count("alter") == 1
    assert audit_kinds(node).count("consult") == 1


def test_read_back_equals_what_was_sent(any_node: NodeClient) -> None:
    node = any_node
    headers = node.auth()
    for kind in ("person", "phone", "location", "county_line", "modern_slavery_case"):
        record = example_record(kind, id=f"{kind}-1", owner_force="20")
        assert (
            node.http.put(f"/v1/records/{kind}-1", json=record, headers=headers).status_code == 201
        )
        back = node.http.get(f"/v1/records/{kind}-1", headers=headers).json()
        assert back == record


def test_put_refuses_another_forces_record_and_mismatched_ids(node: NodeClient) -> None:
    headers = node.auth()
    other = node.http.put("/v1/records/p-9", json=person("p-9", force="05"), headers=headers)
    assert other.status_code == 403
    mismatch = node.http.put("/v1/records/p-8", json=person("p-9"), headers=headers)
    assert mismatch.status_code == 400
    assert mismatch.json()["errors"][0]["pointer"] == "/id"


def test_invalid_record_names_the_pointer(node: NodeClient) -> None:
    record = example_record("phone", id="ph-1", owner_force="20")
    record["body"]["number"] = "not a phone"
    response = node.http.put("/v1/records/ph-1", json=record, headers=node.auth())
    assert response.status_code == 422
    assert any(e["pointer"] == "/body/number" for e in response.json()["errors"])


def test_delete_shreds_and_leaves_a_tombstone(any_node: NodeClient) -> None:
    node = any_node
    headers = node.auth()
    node.http.put("/v1/records/p-1", json=person("p-1"), headers=headers)
    document, key_id = raw_rows(
        node, "SELECT document, data_key_id FROM records WHERE record_id='p-1'"
    )[0]
    if isinstance(document, str):
        document = json.loads(document)
    ciphertext = document["body"]["names"][0]["family_name"]
    assert is_field_ciphertext(ciphertext)

    gone = node.http.delete("/v1/records/p-1?reason=erasure", headers=headers)
    assert gone.status_code == 200
    assert node.http.get("/v1/records/p-1", headers=headers).status_code == 410
    assert node.http.delete("/v1/records/p-1", headers=headers).status_code == 410

    # From the raw database: the data key row is gone, and no remaining wrapped key opens it.
    assert raw_rows(node, f"SELECT count(*) FROM data_keys WHERE key_id='{key_id}'") == [(0,)]
    kek = node.http.app.state.node.keys.kek
    for other_id, version, blob in raw_rows(
        node, "SELECT key_id, kek_version, wrapped FROM data_keys"
    ):
        data_key = kek.unwrap(WrappedKey(kek_version=version, blob=bytes(blob)))
        with pytest.raises(CiphertextError):
            FieldCipher(data_key, other_id).decrypt(
                ciphertext,
                force="20",
                record_id="p-1",
                pointer="/body/names/0/family_name",
                schema_version="1",
            )
    feed = node.http.get("/v1/changes", headers=headers).json()["changes"]
    assert [c["op"] for c in feed] == ["upsert", "delete"]
    assert feed[-1]["reason"] == "erasure"
    assert "erase" in audit_kinds(node)


def test_unknown_record_is_404_and_bad_reason_is_400(node: NodeClient) -> None:
    headers = node.auth()
    assert node.http.get("/v1/records/nope", headers=headers).status_code == 404
    node.http.put("/v1/records/p-1", json=person("p-1"), headers=headers)
    assert node.http.delete("/v1/records/p-1?reason=whim", headers=headers).status_code == 400


def ndjson(records: list[Any]) -> bytes:
    return b"".join(
        (r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records
    )


def test_bulk_reports_each_line(any_node: NodeClient) -> None:
    node = any_node
    headers = {**node.auth(), "Content-Type": "application/x-ndjson"}
    bad = person("p-3")
    bad["grading"]["handling"] = "C"  # conditions missing
    body = ndjson([person("p-1"), b"{not json", bad, person("p-4", force="05"), person("p-2")])
    report = node.http.post("/v1/records/bulk", content=body, headers=headers).json()
    assert (report["accepted"], report["rejected"]) == (2, 3)
    by_line = {line["line"]: line for line in report["lines"]}
    assert by_line[1]["status"] == "accepted" and by_line[5]["status"] == "accepted"
    assert by_line[2]["status"] == "rejected"
    assert any("conditions" in e["pointer"] for e in by_line[3]["errors"])
    assert by_line[4]["errors"][0]["pointer"] == "/owner_force"


def test_bulk_atomic_commits_nothing_when_a_line_fails(any_node: NodeClient) -> None:
    node = any_node
    headers = {**node.auth(), "Content-Type": "application/x-ndjson"}
    body = ndjson([person("p-1"), b"[]"])
    report = node.http.post("/v1/records/bulk?atomic=true", content=body, headers=headers).json()
    assert report["committed"] is False and report["accepted"] == 0
    assert node.http.get("/v1/records/p-1", headers=headers).status_code == 404


def test_bulk_idempotency_key_replays_the_first_result(any_node: NodeClient) -> None:
    node = any_node
    headers = {
        **node.auth(),
        "Content-Type": "application/x-ndjson",
        "Idempotency-Key": "upload-0001",
    }
    body = ndjson([person(f"p-{i}") for i in range(5)])
    first = node.http.post("/v1/records/bulk", content=body, headers=headers)
    assert first.json()["created"] == 5
    size_after_first = node.http.app.state.node.audit.log.size()
    again = node.http.post("/v1/records/bulk", content=body, headers=headers)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert node.http.app.state.node.audit.log.size() == size_after_first
    other = node.http.post("/v1/records/bulk", content=ndjson([person("p-9")]), headers=headers)
    assert other.status_code == 409


def test_bulk_line_over_the_limit_is_413(node: NodeClient) -> None:
    headers = {**node.auth(), "Content-Type": "application/x-ndjson"}
    limit = node.settings.max_ndjson_line_bytes
    response = node.http.post(
        "/v1/records/bulk", content=b'{"x": "' + b"a" * (limit + 10) + b'"}\n', headers=headers
    )
    assert response.status_code == 413


def test_change_feed_pages_with_an_opaque_cursor(any_node: NodeClient) -> None:
    node = any_node
    headers = node.auth()
    for i in range(5):
        node.http.put(f"/v1/records/p-{i}", json=person(f"p-{i}"), headers=headers)
    first = node.http.get("/v1/changes?limit=3", headers=headers).json()
    assert [c["record_id"] for c in first["changes"]] == ["p-0", "p-1", "p-2"]
    rest = node.http.get(f"/v1/changes?since={first['next_cursor']}", headers=headers).json()
    assert [c["record_id"] for c in rest["changes"]] == ["p-3", "p-4"]
    empty = node.http.get(f"/v1/changes?since={rest['next_cursor']}", headers=headers).json()
    assert empty["changes"] == [] and empty["next_cursor"] == rest["next_cursor"]
    for bad in ("-1", "abc", "YzE6LTE"):
        assert node.http.get(f"/v1/changes?since={bad}", headers=headers).status_code == 400
    assert node.http.get("/v1/changes?limit=100000", headers=headers).status_code == 422


SENTINELS = ["Zebedee-Quixotic", "+447911123777", "Sentinel Street 99", "1911-11-11"]


def test_no_sensitive_sentinel_is_stored_in_plaintext(any_node: NodeClient) -> None:
    node = any_node
    headers = {**node.auth(), "Content-Type": "application/x-ndjson"}
    records = []
    for i in range(20):
        r = person(f"s-{i}", family=SENTINELS[0])
        r["body"]["date_of_birth"] = SENTINELS[3]
        records.append(r)
    phone = example_record("phone", id="s-phone", owner_force="20")
    phone["body"]["number"] = SENTINELS[1]
    location = example_record("location", id="s-loc", owner_force="20")
    location["body"]["address_lines"] = [SENTINELS[2]]
    records += [phone, location]
    report = node.http.post("/v1/records/bulk", content=ndjson(records), headers=headers).json()
    assert report["rejected"] == 0, report
    node.http.app.state.node.audit.log.flush()
    dumps = database_bytes(node)
    # The scan must see the stored records (ids are not sensitive), or it would prove nothing.
    assert any(b"s-phone" in blob for blob in dumps.values())
    for where, blob in dumps.items():
        for sentinel in SENTINELS:
            assert sentinel.encode() not in blob, f"{sentinel} in plaintext in {where}"
    # ... and the node still reads them back.
    back = node.http.get("/v1/records/s-phone", headers=node.auth()).json()
    assert back["body"]["number"] == SENTINELS[1]


def test_kek_failure_fails_closed(node: NodeClient) -> None:
    headers = node.auth()
    node.http.put("/v1/records/p-1", json=person("p-1"), headers=headers)
    kek = node.http.app.state.node.keys.kek
    kek.close()
    response = node.http.get("/v1/records/p-1", headers=headers)
    # A key provider that stopped working is a retryable outage (503), never a plaintext read.
    assert response.status_code == 503
    assert "key encryption key provider" in response.json()["detail"]
    assert "Okonkwo" not in response.text
    with pytest.raises(KekError.__mro__[1]):
        kek.unwrap(WrappedKey(kek_version="v1", blob=b"x" * 60))


def _age_idempotency_keys(node: NodeClient, hours: int) -> None:
    """Move every stored key's time back, as if it had been sent `hours` ago."""
    sql = f"UPDATE idempotency_keys SET created_at = created_at - INTERVAL '{hours} hours'"
    if is_postgres(node):
        url = node.settings.resolved_database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]
        return
    with sqlite3.connect(node.settings.data_dir / "node.db") as conn:
        conn.execute(
            "UPDATE idempotency_keys SET created_at = "
            f"strftime('%Y-%m-%d %H:%M:%f000', created_at, '-{hours} hours')"
        )


def test_bulk_idempotency_keys_are_forgotten_after_their_window(any_node: NodeClient) -> None:
    node = any_node
    headers = {
        **node.auth(),
        "Content-Type": "application/x-ndjson",
        "Idempotency-Key": "nightly-0001",
    }
    first = node.http.post("/v1/records/bulk", content=ndjson([person("p-1")]), headers=headers)
    assert first.json()["created"] == 1
    _age_idempotency_keys(node, 23)  # still within the 24-hour window: replayed
    again = node.http.post("/v1/records/bulk", content=ndjson([person("p-1")]), headers=headers)
    assert again.headers.get("idempotent-replayed") == "true"
    _age_idempotency_keys(node, 2)  # now 25 hours old: forgotten, its stored answer deleted
    assert raw_rows(node, "SELECT count(*) FROM idempotency_keys") == [(1,)]
    body = ndjson([person("p-1"), person("p-2")])
    fresh = node.http.post("/v1/records/bulk", content=body, headers=headers)
    assert fresh.status_code == 200 and "idempotent-replayed" not in fresh.headers
    assert (fresh.json()["created"], fresh.json()["unchanged"]) == (1, 1)
    assert raw_rows(node, "SELECT count(*) FROM idempotency_keys") == [(1,)]
