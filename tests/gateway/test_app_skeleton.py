"""The service skeleton: problem+json everywhere, request ids, body limits, probes, settings."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from fastapi import Body
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from gateway.app import create_app
from gateway.db import Database
from gateway.errors import Forbidden
from gateway.logging import REDACTED, configure_logging
from gateway.node import NodeStartupError, init_node
from gateway.settings import Settings
from tests.gateway.conftest import make_settings


class Item(BaseModel):
    name: str
    count: int


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path, max_body_bytes=2048)
    init_node(settings)
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)

    @app.post("/_test/items")
    async def make_item(item: Item = Body(...)) -> dict[str, int]:
        return {"count": item.count}

    @app.get("/_test/crash")
    async def crash() -> None:
        raise RuntimeError("secret detail: Jane Doe 07700900123")

    @app.get("/_test/forbidden")
    async def forbidden() -> None:
        raise Forbidden("You may not.")

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"urn:police-gateway:problem:{slug}"
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


def test_unknown_route_is_problem_json(client: TestClient) -> None:
    assert_problem(client.get("/no/such/route"), 404, "not-found")


def test_validation_error_names_each_json_pointer(client: TestClient) -> None:
    body = assert_problem(
        client.post("/_test/items", json={"name": 5, "count": "many"}), 422, "validation-failed"
    )
    pointers = sorted(e["pointer"] for e in body["errors"])
    assert pointers == ["/count", "/name"]


def test_unexpected_error_leaks_no_internals(client: TestClient) -> None:
    response = client.get("/_test/crash")
    body = assert_problem(response, 500, "internal-error")
    text = response.text
    assert "Jane" not in text and "07700900123" not in text and "RuntimeError" not in text
    assert "Traceback" not in text
    assert body["request_id"] == response.headers["x-request-id"]


def test_gateway_error_carries_its_status(client: TestClient) -> None:
    assert_problem(client.get("/_test/forbidden"), 403, "forbidden")


def test_request_id_is_generated_and_echoed(client: TestClient) -> None:
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) >= 8
    echoed = client.get("/healthz", headers={"X-Request-ID": "abc-12345678"})
    assert echoed.headers["x-request-id"] == "abc-12345678"
    # A hostile request id is replaced rather than echoed.
    hostile = client.get("/healthz", headers={"X-Request-ID": "bad id\r\nx: y"})
    assert hostile.headers["x-request-id"] != "bad id\r\nx: y"


def test_body_over_the_limit_is_413_by_declared_length(client: TestClient) -> None:
    big = json.dumps({"name": "x" * 5000, "count": 1})
    assert_problem(client.post("/_test/items", content=big), 413, "payload-too-large")


def test_body_over_the_limit_is_413_when_streamed_without_length(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    response = client.post(
        "/_test/items", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")


def test_body_under_the_limit_is_served(client: TestClient) -> None:
    assert client.post("/_test/items", json={"name": "a", "count": 3}).json() == {"count": 3}


def test_probes(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json()["status"] == "ok"
    assert client.get("/openapi.json").status_code == 200


def test_readyz_is_503_when_the_database_is_unreachable(settings: Settings, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/readyz").status_code == 200
        c.app.state.node.db = Database(f"sqlite+aiosqlite:///{blocker}/sub/node.db")
        assert_problem(c.get("/readyz"), 503, "unavailable")


def test_node_refuses_to_start_uninitialised(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "empty"))
    with pytest.raises(NodeStartupError, match="gateway init"), TestClient(app):
        pass


@pytest.mark.parametrize("placeholder", ["change-me", "", "dev-auditor-token", "secret"])
def test_settings_refuse_placeholder_secrets_in_production(placeholder: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment="production", auditor_token=placeholder)


def test_settings_allow_development_defaults() -> None:
    assert Settings(environment="development").auditor_token.get_secret_value()


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_FORCE_CODE", "20")
    monkeypatch.setenv("GATEWAY_MAX_BODY_BYTES", "4096")
    s = Settings()
    assert (s.force_code, s.max_body_bytes) == ("20", 4096)


def test_log_redaction_removes_personal_data_and_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json_lines=True)
    buffer = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    log = structlog.get_logger("t")
    log.info(
        "records.disclosed",
        record_id="R-1",
        family_name="Okonkwo",
        phoneNumber="+447700900123",
        nested={"date_of_birth": "1990-01-02", "count": 3, "items": [{"postcode": "L1 8JQ"}]},
        authorization="Bearer abc.def",
        justification="looking for my ex",
        client_secret="s3cr3t",
    )
    line = json.loads(buffer.getvalue().strip().splitlines()[-1])
    text = json.dumps(line)
    for leaked in [
        "Okonkwo",
        "+447700900123",
        "1990-01-02",
        "L1 8JQ",
        "abc.def",
        "my ex",
        "s3cr3t",
    ]:
        assert leaked not in text
    assert line["record_id"] == "R-1"
    assert line["family_name"] == REDACTED
    assert line["nested"]["count"] == 3
    assert line["event"] == "records.disclosed"
