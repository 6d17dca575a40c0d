"""Secrets as files: `GATEWAY_<SETTING>_FILE` (compose `secrets:`) instead of inline values."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ops.secret_files import SecretFileError
from gateway.settings import Settings


def test_a_secret_file_sets_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "auditor_token"
    secret.write_text("auditor-" + "k" * 40 + "\n", encoding="utf-8")
    monkeypatch.delenv("GATEWAY_AUDITOR_TOKEN", raising=False)
    monkeypatch.setenv("GATEWAY_ENVIRONMENT", "production")
    monkeypatch.setenv("GATEWAY_AUDITOR_TOKEN_FILE", str(secret))
    settings = Settings()
    assert settings.auditor_token.get_secret_value() == "auditor-" + "k" * 40
    # Path settings keep their meaning: GATEWAY_KEK_FILE is the key file, not a secret file.
    monkeypatch.setenv("GATEWAY_KEK_FILE", str(tmp_path / "kek.json"))
    assert Settings().kek_path == tmp_path / "kek.json"


def test_placeholder_in_a_secret_file_is_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "auditor_token"
    secret.write_text("change-me", encoding="utf-8")
    monkeypatch.setenv("GATEWAY_ENVIRONMENT", "production")
    monkeypatch.setenv("GATEWAY_AUDITOR_TOKEN_FILE", str(secret))
    with pytest.raises(ValueError, match="placeholder"):
        Settings()


@pytest.mark.parametrize("problem", ["both", "missing", "empty"])
def test_unusable_secret_files_stop_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    secret = tmp_path / "token"
    secret.write_text("" if problem == "empty" else "auditor-" + "z" * 40, encoding="utf-8")
    path = tmp_path / "absent" if problem == "missing" else secret
    monkeypatch.setenv("GATEWAY_AUDITOR_TOKEN_FILE", str(path))
    if problem == "both":
        monkeypatch.setenv("GATEWAY_AUDITOR_TOKEN", "auditor-" + "y" * 40)
    else:
        monkeypatch.delenv("GATEWAY_AUDITOR_TOKEN", raising=False)
    with pytest.raises(SecretFileError):
        Settings()
