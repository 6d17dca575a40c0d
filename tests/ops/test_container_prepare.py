"""The container start-up step: idempotent init that publishes only public key material."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.ops.container import main, prepare
from tests.gateway.conftest import make_settings


def test_prepare_is_idempotent_and_publishes_public_keys_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "node")
    first = prepare(settings)
    assert "database migrated to head" in first
    signing_key = settings.signing_key_file.read_bytes()
    prepare(settings)
    assert settings.signing_key_file.read_bytes() == signing_key  # never regenerated

    public = settings.data_dir / "public"
    assert sorted(p.name for p in public.iterdir()) == ["log.vkey", "node.pub.jwk"]
    jwk = json.loads((public / "node.pub.jwk").read_text())
    assert jwk["kty"] == "OKP" and "d" not in jwk
    assert (public / "log.vkey").read_text().startswith(settings.log_origin)


def test_prepare_refuses_unknown_arguments() -> None:
    assert main(["serve"]) == 2
