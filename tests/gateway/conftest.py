"""Fixtures for a real node: initialised keys and database in a temporary directory."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.db import Database
from gateway.identity.clients import add_client
from gateway.node import init_node
from gateway.settings import Settings

NODE_URL = "http://127.0.0.1:8005"


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "force_code": "20",
        "node_url": NODE_URL,
        "data_dir": data_dir,
        "auditor_token": "auditor-" + "x" * 32,
        "checkpoint_interval_seconds": 0.2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def node_settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path / "node")
    init_node(settings)
    return settings


@pytest.fixture(params=["sqlite", "postgres"])
def any_backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Node settings on SQLite, then on the real PostgreSQL server (required under CI)."""
    if request.param == "sqlite":
        settings = make_settings(tmp_path / "node")
    else:
        url = request.getfixturevalue("pg_database")
        settings = make_settings(
            tmp_path / "node", database_url=url.replace("postgresql://", "postgresql+psycopg://")
        )
    init_node(settings)
    return settings


@pytest.fixture
def any_node(any_backend_settings: Settings) -> Iterator[NodeClient]:
    """A running node on each database backend, with a registered force system."""
    yield from _running_node(any_backend_settings)


def register_client(settings: Settings, name: str, scopes: list[str]) -> tuple[str, str]:
    async def _add() -> tuple[str, str]:
        db = Database(settings.resolved_database_url)
        try:
            async with db.sessions() as session:
                new = await add_client(session=session, name=name, scopes=scopes)
                await session.commit()
                return new.client_id, new.secret
        finally:
            await db.dispose()

    return asyncio.run(_add())


@dataclass
class NodeClient:
    http: TestClient
    settings: Settings
    client_id: str
    secret: str

    def token(self, scope: str | None = None) -> str:
        form = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        response = self.http.post("/oauth/token", data=form, auth=(self.client_id, self.secret))
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def auth(self, scope: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(scope)}"}


@pytest.fixture
def node(node_settings: Settings) -> Iterator[NodeClient]:
    yield from _running_node(node_settings)


def _running_node(settings: Settings) -> Iterator[NodeClient]:
    client_id, secret = register_client(settings, "rms", ["records:write", "records:read"])
    app = create_app(settings)
    with TestClient(app, base_url=NODE_URL, raise_server_exceptions=False) as http:
        yield NodeClient(http=http, settings=settings, client_id=client_id, secret=secret)
