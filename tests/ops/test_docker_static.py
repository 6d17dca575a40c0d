"""The Docker deployment, checked statically (no Docker engine runs here): compose services,
healthchecks, a non-root multi-stage image, and no secret written into either file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
FORCES = ("05", "20", "01")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text(encoding="utf-8")


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_three_force_nodes_each_with_its_own_database_and_token(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for force in FORCES:
        node, db = services[f"node-{force}"], services[f"db-{force}"]
        env = environment(node)
        assert env["GATEWAY_FORCE_CODE"] == force
        assert env["GATEWAY_KEK_PROVIDER"] == "pkcs11"
        assert env["GATEWAY_PKCS11_TOKEN_LABEL"] == f"gateway-{force}"
        assert db["image"].startswith("postgres:")
        assert node["depends_on"][f"db-{force}"]["condition"] == "service_healthy"
        mounts = [str(v) for v in node["volumes"]]
        assert f"hsm-{force}:/var/lib/softhsm/tokens" in mounts
        assert f"node-{force}:/var/lib/gateway" in mounts
    # No two nodes share a database, a token or a data volume.
    for kind in ("db", "hsm", "node"):
        assert len({f"{kind}-{f}" for f in FORCES} & set(compose["volumes"])) == 3


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert isinstance(check, dict) and check.get("test"), f"{name} has no healthcheck"
        assert check.get("disable") is not True, name
    node_check = " ".join(compose["services"]["node-05"]["healthcheck"]["test"])
    assert "/healthz" in node_check


def test_secrets_are_files_never_inline(compose: dict[str, Any]) -> None:
    declared = compose["secrets"]
    for name, secret in declared.items():
        assert set(secret) == {"file"}, f"secret {name} is not a file"
    for name, service in compose["services"].items():
        env = environment(service)
        for key, value in env.items():
            secretish = re.search(r"(TOKEN|PASSWORD|PIN|SECRET|DATABASE_URL)$", key)
            assert not secretish, f"{name}: {key} is set inline; use {key}_FILE and a secret"
            assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", value), f"{name}: credentials in {key}"
            if re.search(r"(TOKEN|PASSWORD|PIN|SECRET|DATABASE_URL)_FILE$", key):
                assert value.startswith("/run/secrets/"), f"{name}: {key} is not a secret file"
        for ref in service.get("secrets", []):
            source = ref["source"] if isinstance(ref, dict) else ref
            assert source in declared, f"{name} uses undeclared secret {source}"
    assert "GATEWAY_AUDITOR_TOKEN_FILE" in environment(compose["services"]["node-20"])


@pytest.mark.parametrize("name", ["compose.yaml", "Dockerfile", "entrypoint.sh"])
def test_no_secret_values_in_the_files(name: str) -> None:
    text = (DOCKER / name).read_text(encoding="utf-8")
    assert "PRIVATE KEY" not in text
    assert not re.search(r"[A-Z_]*(TOKEN|PASSWORD|PIN)=\S", text), "inline secret assignment"
    assert not re.search(r"--(so-)?pin\s+[^\s\"$]", text), "a literal PIN on a command line"


def test_image_is_multi_stage_slim_non_root_with_a_healthcheck(dockerfile: str) -> None:
    stages = re.findall(
        r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, re.MULTILINE | re.IGNORECASE
    )
    assert len(stages) >= 2
    assert all(image.startswith("python:3.11-slim") for image, _ in stages)
    assert re.search(r"COPY --from=builder", dockerfile)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "[dev]" not in runtime and "pytest" not in runtime
    assert re.search(r"pip install --no-index", runtime)
    assert re.search(r"^HEALTHCHECK .*\n?.*healthz", dockerfile, re.MULTILINE)
    assert re.search(r'^CMD \["gateway", "serve"', dockerfile, re.MULTILINE)


def test_scripts_the_image_copies_exist_and_are_executable(dockerfile: str) -> None:
    for source in re.findall(r"^COPY --chmod=0755 (\S+)", dockerfile, re.MULTILINE):
        path = DOCKER.parent / source
        assert path.is_file(), source
    for script in ("entrypoint.sh", "federation-authority.sh", "make-secrets.sh"):
        assert (DOCKER / script).stat().st_mode & 0o111, script
