"""Console settings (environment prefix `GATEWAY_CONSOLE_`) and the session secret file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.settings import Settings

SESSION_SECRET_BYTES = 48


class ConsoleSettings(BaseSettings):
    """Where auditors sign in and how long a console session lasts."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_CONSOLE_", env_file=None, extra="ignore")

    issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer auditors sign in with; default: the node's built-in one",
    )
    client_id: str = "gateway-console"
    client_secret: SecretStr | None = Field(
        default=None, description="only for an issuer that registers the console as confidential"
    )
    session_secret_file: Path | None = Field(
        default=None, description="default: data_dir/console-session.key"
    )
    session_max_age_seconds: int = Field(default=8 * 3600, ge=300, le=24 * 3600)
    auditor_role: str = "auditor"
    scan_limit: int = Field(
        default=5000, ge=100, le=100_000, description="entries 'who looked' unseals at most"
    )

    def issuer_url(self, settings: Settings) -> str:
        return (self.issuer or settings.node_url).rstrip("/")

    def uses_builtin_issuer(self, settings: Settings) -> bool:
        return self.issuer_url(settings) == settings.node_url.rstrip("/")


def session_secret(settings: Settings, console: ConsoleSettings) -> str:
    """The key that signs session cookies, created on first use and kept beside the node's keys."""
    path = console.session_secret_file or settings.data_dir / "console-session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: two replicas starting together must not overwrite each other's secret.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(SESSION_SECRET_BYTES))
    value = path.read_text().strip()
    if len(value) < 32:
        raise ValueError(f"the console session secret in {path} is too short")
    return value
