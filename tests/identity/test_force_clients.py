"""Force-system clients: `gateway clients add` on a real node and what the database keeps of the
secret, on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.cli import app as gateway_cli
from gateway.settings import Settings
from tests.gateway.conftest import (  # noqa: F401 - fixtures reused from the gateway suite
    NODE_URL,
    any_backend_settings,
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
