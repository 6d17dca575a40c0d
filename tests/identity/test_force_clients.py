"""Force-system clients: `gateway clients add` on a real node, what the database keeps of the
secret, and the lock-out after five failed authentications (CJIS Security Policy 5.5.3), on
SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from audit.entry import decode_entry
from gateway.app import create_app
from gateway.cli import app as gateway_cli
from gateway.db import Database
from gateway.identity.tables import ClientRow
from gateway.settings import Settings
from tests.gateway.conftest import (  # noqa: F401 - fixtures reused from the gateway suite
    NODE_URL,
    NodeClient,
    any_backend_settings,
    any_node,
)

ALLOWED_SCOPES = ("audit:read", "records:read", "records:write")


# --- helpers ------------------------------------------------------------------------------------


def cli_env(settings: Settings) -> dict[str, str]:
    """The GATEWAY_* environment under which `gateway` acts as this node."""
    env = {
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_FORCE_CODE": settings.force_code,
        "GATEWAY_NODE_URL": settings.node_url,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_AUDITOR_TOKEN": settings.auditor_token.get_secret_value(),
        "GATEWAY_LOG_LEVEL": "WARNING",
        # Wide enough that typer's error panel never wraps a scope name.
        "COLUMNS": "250",
    }
    if settings.database_url:
        env["GATEWAY_DATABASE_URL"] = settings.database_url
    return env


def raw_client_rows(settings: Settings) -> list[dict[str, Any]]:
    """Every row of the clients table, read with the database's own driver (no ORM)."""
    url = make_url(settings.resolved_database_url)
    query = "SELECT * FROM oauth_clients"
    if url.get_backend_name() == "sqlite":
        with closing(sqlite3.connect(str(url.database))) as lite:
            lite.row_factory = sqlite3.Row
            return [dict(row) for row in lite.execute(query)]
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as pg, pg.cursor() as cur:
        cur.execute(query)
        names = [column.name for column in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def raw_database_bytes(settings: Settings) -> bytes:
    """The SQLite database file and its write-ahead log, byte for byte."""
    path = Path(str(make_url(settings.resolved_database_url).database))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def parse_cli_output(output: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in {"client_id", "client_secret", "scopes"}:
            fields[key.strip()] = value.strip()
    return fields


def token_response(http: TestClient, client_id: str, secret: str, scope: str | None = None) -> Any:
    form = {"grant_type": "client_credentials"}
    if scope is not None:
        form["scope"] = scope
    return http.post("/oauth/token", data=form, auth=(client_id, secret))


def auth_failures(node: NodeClient) -> list[tuple[str, str | None]]:
    """(reason, client id) of every `auth_failure` entry in the node's audit log, in order."""
    log = node.http.app.state.node.audit.log  # type: ignore[attr-defined]
    log.flush()
    found = []
    for raw in log.entries(0, log.size()):
        entry = decode_entry(raw)
        if str(entry.kind) == "auth_failure":
            found.append((str(entry.purpose), entry.actor.client_id if entry.actor else None))
    return found


def stored_lock(settings: Settings, client_id: str) -> tuple[int, datetime | None]:
    """The client's failure count and `locked_until`, as the database holds them."""

    async def read() -> tuple[int, datetime | None]:
        db = Database(settings.resolved_database_url)
        try:
            async with db.sessions() as session:
                row = await session.get(ClientRow, client_id)
                assert row is not None
                return row.failed_attempts, row.locked_until
        finally:
            await db.dispose()

    return asyncio.run(read())


def move_lock_back(settings: Settings, client_id: str, by: timedelta) -> None:
    """Move the client's `locked_until` earlier by `by`, straight in the database: the passing
    of time without waiting for it."""

    async def move() -> None:
        db = Database(settings.resolved_database_url)
        try:
            async with db.sessions() as session:
                row = await session.get(ClientRow, client_id)
                assert row is not None and row.locked_until is not None, "the client is not locked"
                row.locked_until -= by
                await session.commit()
        finally:
            await db.dispose()

    asyncio.run(move())


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- `gateway clients add` ----------------------------------------------------------------------


@pytest.fixture
def served(any_backend_settings: Settings) -> Iterator[TestClient]:  # noqa: F811
    """The initialised node on each backend, served in-process, with no client registered."""
    with TestClient(
        create_app(any_backend_settings), base_url=NODE_URL, raise_server_exceptions=False
    ) as http:
        yield http


def test_clients_add_shows_the_secret_once_stores_only_an_argon2id_hash_and_the_pair_works(
    any_backend_settings: Settings,  # noqa: F811 - the imported fixture
    served: TestClient,
) -> None:
    """The command prints a client id and a secret, the secret once; the clients table holds an
    argon2id hash of it and never the secret; the pair then obtains a token at /oauth/token with
    the scopes asked for on the command line, and only those."""
    settings = any_backend_settings
    result = CliRunner().invoke(
        gateway_cli,
        ["clients", "add", "niche-rms", "--scopes", "records:write,records:read"],
        env=cli_env(settings),
    )
    assert result.exit_code == 0, result.output
    printed = parse_cli_output(result.output)
    client_id, secret = printed["client_id"], printed["client_secret"]
    assert client_id.startswith("cli_")
    assert len(secret) >= 32
    assert result.output.count(secret) == 1
    assert printed["scopes"].split() == ["records:read", "records:write"]

    rows = raw_client_rows(settings)
    assert [row["client_id"] for row in rows] == [client_id]
    row = rows[0]
    assert row["name"] == "niche-rms"
    assert set(row["scopes"].split()) == {"records:read", "records:write"}
    assert all(secret not in str(value) for value in row.values())
    assert row["secret_hash"].startswith("$argon2id$")
    assert PasswordHasher().verify(row["secret_hash"], secret)
    if not settings.database_url:  # SQLite: not in any page of the file or its log either
        assert secret.encode() not in raw_database_bytes(settings)

    granted = token_response(served, client_id, secret, "records:write records:read")
    assert granted.status_code == 200, granted.text
    assert set(granted.json()["scope"].split()) == {"records:read", "records:write"}
    bearer = {"Authorization": f"Bearer {granted.json()['access_token']}"}
    # Accepted for a read (404: no such record), not refused (401) or out of scope (403).
    assert served.get("/v1/records/none-such", headers=bearer).status_code == 404
    # A scope not given on the command line is not granted.
    auditor = token_response(served, client_id, secret, "audit:read")
    assert "audit:read" not in str(auditor.json().get("scope", ""))
    assert token_response(served, client_id, "not-the-secret").status_code == 401


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        ("records:write,records:delete", "records:delete"),
        ("records:read,admin", "admin"),
        ("", "at least one scope"),
    ],
    ids=["unknown-scope", "unknown-word", "no-scope"],
)
def test_clients_add_refuses_unknown_scopes_naming_the_allowed_ones(
    any_backend_settings: Settings,  # noqa: F811 - the imported fixture
    scopes: str,
    message: str,
) -> None:
    """An unknown (or no) scope on the command line is a usage error (exit status 2) that says
    what was wrong and which scopes are allowed; nothing is registered."""
    result = CliRunner().invoke(
        gateway_cli,
        ["clients", "add", "niche-rms", "--scopes", scopes],
        env=cli_env(any_backend_settings),
    )
    assert result.exit_code == 2, result.output
    assert "--scopes" in result.output
    assert message in result.output
    if scopes:
        assert all(scope in result.output for scope in ALLOWED_SCOPES)
    assert "client_secret" not in result.output
    assert raw_client_rows(any_backend_settings) == []


# --- lock-out -----------------------------------------------------------------------------------


def test_five_failures_lock_the_client_for_ten_minutes_audited_then_it_works_again(
    any_node: NodeClient,  # noqa: F811 - the imported fixture
) -> None:
    """Four wrong secrets are audited as `invalid_client`; the fifth locks the client, audited as
    `client_locked_now`, for ten minutes from then. While locked, even the right secret is
    refused (401, audited `client_locked`), and nine minutes later it still is. Once the ten
    minutes have passed (moved back in the database, not waited for), the right secret works
    again and the lock and count are cleared."""
    node = any_node
    for attempt in range(1, 5):
        refused = token_response(node.http, node.client_id, "wrong-secret")
        assert refused.status_code == 401, attempt
        assert refused.json()["error"] == "invalid_client"
        assert stored_lock(node.settings, node.client_id) == (attempt, None)

    before = datetime.now(UTC)
    fifth = token_response(node.http, node.client_id, "wrong-secret")
    after = datetime.now(UTC)
    assert fifth.status_code == 401
    assert fifth.json()["error"] == "invalid_client"
    _count, locked_until = stored_lock(node.settings, node.client_id)
    assert locked_until is not None
    assert before + timedelta(minutes=10) <= as_utc(locked_until) <= after + timedelta(minutes=10)
    reasons = [(reason, node.client_id) for reason in ["invalid_client"] * 4]
    assert auth_failures(node) == [*reasons, ("client_locked_now", node.client_id)]

    right_but_locked = token_response(node.http, node.client_id, node.secret)
    assert right_but_locked.status_code == 401
    assert right_but_locked.json()["error"] == "invalid_client"
    assert "locked" in right_but_locked.json()["detail"]
    assert "access_token" not in right_but_locked.json()
    assert auth_failures(node)[-1] == ("client_locked", node.client_id)

    move_lock_back(node.settings, node.client_id, timedelta(minutes=9))
    still_locked = token_response(node.http, node.client_id, node.secret)
    assert still_locked.status_code == 401
    assert auth_failures(node)[-1] == ("client_locked", node.client_id)
    assert len(auth_failures(node)) == 7

    move_lock_back(node.settings, node.client_id, timedelta(minutes=1, seconds=1))
    again = token_response(node.http, node.client_id, node.secret)
    assert again.status_code == 200, again.text
    assert again.json()["access_token"]
    assert stored_lock(node.settings, node.client_id) == (0, None)
    assert len(auth_failures(node)) == 7  # a success is not an auth failure
    # The count starts afresh: one wrong secret now is a plain failure, not a lock.
    assert token_response(node.http, node.client_id, "wrong-secret").status_code == 401
    assert auth_failures(node)[-1] == ("invalid_client", node.client_id)
    assert stored_lock(node.settings, node.client_id) == (1, None)


def test_a_locked_client_is_refused_whatever_it_sends_and_the_lock_is_not_extended(
    any_node: NodeClient,  # noqa: F811 - the imported fixture
) -> None:
    """Attempts while locked (wrong secret, right secret, secret in the form) are all refused
    and audited `client_locked`; none of them counts as a new failure or moves the lock. Once it
    has expired, a single wrong secret is an ordinary failure: a new lock takes five more."""
    node = any_node
    for _ in range(5):
        assert token_response(node.http, node.client_id, "wrong-secret").status_code == 401
    locked = stored_lock(node.settings, node.client_id)
    assert locked[1] is not None

    assert token_response(node.http, node.client_id, "wrong-secret").status_code == 401
    in_form = node.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": node.client_id,
            "client_secret": node.secret,
        },
    )
    assert in_form.status_code == 401
    assert "locked" in in_form.json()["detail"]
    assert [reason for reason, _ in auth_failures(node)[-3:]] == [
        "client_locked_now",
        "client_locked",
        "client_locked",
    ]
    assert stored_lock(node.settings, node.client_id) == locked

    move_lock_back(node.settings, node.client_id, timedelta(minutes=10, seconds=1))
    for attempt in range(1, 5):
        assert token_response(node.http, node.client_id, "wrong-secret").status_code == 401
        assert auth_failures(node)[-1] == ("invalid_client", node.client_id), attempt
        assert stored_lock(node.settings, node.client_id)[0] == attempt
    assert token_response(node.http, node.client_id, node.secret).status_code == 200
