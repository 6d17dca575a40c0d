"""The key provider failing under a serving node: the PKCS#11 token removed or finalised.

SoftHSM2 is the token. "Removed" moves the token's directory away (what the token library sees
when an HSM partition disappears); "finalised" re-initialises the PKCS#11 module under the
node, which invalidates its session. Reads and writes then fail closed with a 503 that names
the key provider; no plaintext is ever served from anywhere else.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.identity.issuer import mint_analyst_token
from gateway.keys.hsm import Pkcs11Settings, init_pkcs11_kek
from gateway.node import init_node
from gateway.settings import Settings
from schemas.examples import example_record
from tests.gateway.conftest import register_client
from tests.hardening.conftest import HOME_URL, federated_node
from tests.keys.conftest import (  # noqa: F401 - fixtures used by name
    SoftHsmToken,
    softhsm_conf,
    softhsm_token,
    write_pin_file,
)

SENTINEL_FAMILY = "Quillfeatherby"
# python-pkcs11 finalises its dead search handles when they are collected and reports that as
# an unraisable error: expected once the token is gone, and not what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def person(record_id: str) -> dict[str, Any]:
    record = example_record("person", id=record_id, owner_force="20")
    record["body"]["names"][0]["family_name"] = SENTINEL_FAMILY
    return record


def token_directory(conf: Path, token: SoftHsmToken) -> Path:
    """The SoftHSM2 directory holding `token` (its label is stored in token.object)."""
    for candidate in (conf.parent / "tokens").iterdir():
        meta = candidate / "token.object"
        if meta.exists() and token.label.encode() in meta.read_bytes():
            return candidate
    raise AssertionError(f"no SoftHSM2 directory for token {token.label}")


@pytest.fixture
def hsm_settings(tmp_path: Path, softhsm_token: SoftHsmToken) -> Settings:  # noqa: F811
    pin_file = write_pin_file(tmp_path, softhsm_token.user_pin)
    init_pkcs11_kek(
        Pkcs11Settings(
            token_label=softhsm_token.label,
            module_path=softhsm_token.module_path,
            pin_file=pin_file,
        )
    )
    settings = federated_node(
        tmp_path,
        kek_provider="pkcs11",
        pkcs11_token_label=softhsm_token.label,
        pkcs11_module=softhsm_token.module_path,
        pkcs11_pin_file=pin_file,
    ).settings
    init_node(settings)
    return settings


class Node:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client_id, self.secret = register_client(
            settings, "rms", ["records:write", "records:read"]
        )

    def serve(self) -> Iterator[Any]:
        app = create_app(self.settings)
        with TestClient(app, base_url=HOME_URL, raise_server_exceptions=False) as http:
            token = http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self.secret),
            ).json()["access_token"]
            http.headers["Authorization"] = f"Bearer {token}"
            yield http

    def search(self, http: TestClient) -> Any:
        token = mint_analyst_token(
            self.settings, user_id="analyst-20", roles=("analyst",), vetting="NPPV2"
        )
        return http.post(
            "/v1/search",
            json={
                "purpose": "investigation",
                "justification": "Operation Kestrel: linked county line",
                "case_ref": "OP-KESTREL-1",
                "mode": "records",
                "forces": ["20"],
                "name": SENTINEL_FAMILY,
            },
            headers={"Authorization": f"Bearer {token}"},
        )


def assert_key_provider_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "key encryption key provider" in response.json()["detail"]
    assert SENTINEL_FAMILY not in response.text


def test_token_removed_reads_fail_closed_and_data_returns_with_the_token(
    hsm_settings: Settings,
    softhsm_conf: Path,  # noqa: F811
    softhsm_token: SoftHsmToken,  # noqa: F811
) -> None:
    node = Node(hsm_settings)
    directory = token_directory(softhsm_conf, softhsm_token)
    parked = directory.with_name(directory.name + ".removed")
    for http in node.serve():
        assert http.put("/v1/records/p-1", json=person("p-1")).status_code == 201
        assert http.get("/v1/records/p-1").json()["body"]["names"][0]["family_name"] == (
            SENTINEL_FAMILY
        )
        found = node.search(http)
        assert found.status_code == 200
        assert SENTINEL_FAMILY in found.text

        shutil.move(directory, parked)
        try:
            assert_key_provider_unavailable(http.get("/v1/records/p-1"))
            assert_key_provider_unavailable(http.put("/v1/records/p-2", json=person("p-2")))
            # The analyst's search answers, but its own force is an error with no content.
            searched = node.search(http)
            assert searched.status_code == 200, searched.text
            own = {r["force"]: r for r in searched.json()["results"]}["20"]
            assert own["status"] == "error"
            assert own["hits"] == []
            assert SENTINEL_FAMILY not in searched.text
        finally:
            shutil.move(parked, directory)

    # With the token back and the node restarted, every record opens again: nothing was lost
    # and nothing was written half-way while the token was missing.
    pkcs11.lib(str(softhsm_token.module_path)).reinitialize()
    for http in node.serve():
        assert http.get("/v1/records/p-1").status_code == 200
        assert http.get("/v1/records/p-2").status_code == 404


def test_module_finalised_under_the_node_fails_closed(
    hsm_settings: Settings,
    softhsm_token: SoftHsmToken,  # noqa: F811
) -> None:
    node = Node(hsm_settings)
    for http in node.serve():
        assert http.put("/v1/records/p-1", json=person("p-1")).status_code == 201
        pkcs11.lib(str(softhsm_token.module_path)).reinitialize()
        assert_key_provider_unavailable(http.get("/v1/records/p-1"))
        assert_key_provider_unavailable(http.put("/v1/records/p-2", json=person("p-2")))
