"""Node settings, read from the environment (prefix `GATEWAY_`) or passed in by code and tests.

Outside development, settings refuse placeholder secrets: a node must not run in production with a
secret anyone can read in this repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

Environment = Literal["development", "test", "production"]

# Values that mark a secret as "not really set". Compared case-insensitively.
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "password", "dev", "test"})
DEV_AUDITOR_TOKEN = "dev-auditor-token"  # noqa: S105 - development default, refused in production


class Settings(BaseSettings):
    """Everything a node needs to start. One instance per node; never read at import time."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=None, extra="ignore")

    environment: Environment = "development"
    force_code: str = Field(default="05", description="PNC code of the force this node serves")
    node_url: str = "http://127.0.0.1:8005"
    data_dir: Path = Path("var/node")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default: SQLite file in data_dir",
    )
    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="JSON log lines; default: not in dev")

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_bulk_bytes: int = Field(default=512 * 1_048_576, ge=1024)
    max_ndjson_line_bytes: int = Field(default=262_144, ge=256)
    idempotency_key_hours: float = Field(
        default=24,
        gt=0,
        le=24 * 366,
        description="how long a bulk upload's Idempotency-Key replays its first answer; past "
        "that the key is forgotten and the same key is a new upload",
    )
    bulk_workers: int | None = Field(
        default=None,
        ge=0,
        le=32,
        description="worker processes that parse, validate and encrypt bulk uploads of 500 "
        "lines or more (default: one per core, at most 4; 0: all in the node process)",
    )

    auditor_token: SecretStr = SecretStr(DEV_AUDITOR_TOKEN)

    kek_provider: Literal["local", "pkcs11"] = "local"
    kek_file: Path | None = Field(default=None, description="default: data_dir/kek.json")
    pkcs11_module: Path = Path("/usr/lib/softhsm/libsofthsm2.so")
    pkcs11_token_label: str = "gateway"  # noqa: S105 - a token label, not a secret
    pkcs11_pin_file: Path | None = None

    audit_database_url: str | None = Field(
        default=None,
        description="audit store: a PostgreSQL URL, or default SQLite file data_dir/audit.db "
        "(PostgreSQL nodes default to their main database)",
    )
    checkpoint_interval_seconds: float = Field(default=1.0, gt=0)
    index_refresh_seconds: float = Field(
        default=5.0,
        ge=0,
        description="how often a node re-reads its blind-index key versions (a key rotation "
        "switches searches to the new version within this time; at least 0.5 s is used); "
        "`gateway keys retire` waits twice this long after the switch",
    )

    policy_dir: Path | None = Field(
        default=None,
        description="directory with agreements/ (Cedar + YAML); default: the shipped examples",
    )
    policy_reload_seconds: float = Field(
        default=5.0, ge=0, description="how often to look for policy changes; 0: never"
    )

    # --- federation and analyst identity -------------------------------------------------------
    manifest_file: Path | None = Field(
        default=None, description="signed federation manifest (JWS); default data_dir/manifest.jws"
    )
    authority_key_file: Path | None = Field(
        default=None,
        description="the federation authority's public key (JWK JSON); "
        "default data_dir/authority.pub.jwk",
    )
    builtin_issuer: bool | None = Field(
        default=None,
        description="serve the built-in token issuer for demo users; default: on except production",
    )
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    partner_deadline_seconds: float = Field(default=2.0, gt=0, le=60)
    # A partner's answer larger than this is refused (status "error") before it is all read.
    max_partner_answer_bytes: int = Field(default=16 * 1_048_576, ge=1024)
    seen_checkpoint_retention_days: int = Field(
        default=90,
        ge=1,
        description="how long partner checkpoints seen in receipts are remembered for fork "
        "detection (from when each was first seen); each partner's newest one is always kept",
    )

    # --- operations (gateway/ops: metrics, rate limits, shutdown, secrets as files) ------------
    rate_limit_enabled: bool = True
    rate_limit_client: str = Field(default="50000/minute", description="per force-system client")
    rate_limit_analyst: str = Field(default="30/second;1200/minute", description="per analyst")
    rate_limit_anonymous: str = Field(default="30/second", description="per address, no token")
    rate_limit_partner: str = Field(default="1000/second", description="per partner node address")
    shutdown_grace_seconds: int = Field(default=30, gt=0, le=600)

    @field_validator(
        "rate_limit_client", "rate_limit_analyst", "rate_limit_anonymous", "rate_limit_partner"
    )
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        from gateway.ops.ratelimit import check_rate_limit_text

        return check_rate_limit_text(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        from gateway.ops.secret_files import SecretFilesSource

        files = SecretFilesSource(settings_cls, env_prefix="GATEWAY_")
        return (init_settings, env_settings, files, dotenv_settings, file_secret_settings)

    @model_validator(mode="after")
    def _refuse_placeholders_outside_development(self) -> Settings:
        if self.environment == "development":
            return self
        for name in ("auditor_token",):
            value: SecretStr = getattr(self, name)
            raw = value.get_secret_value().strip().lower()
            if raw in PLACEHOLDER_SECRETS or raw.startswith("dev-"):
                raise ValueError(
                    f"GATEWAY_{name.upper()} is a placeholder; "
                    "set a real secret outside development"
                )
        return self

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.environment != "development"

    @property
    def manifest_path(self) -> Path:
        return self.manifest_file or self.data_dir / "manifest.jws"

    @property
    def authority_key_path(self) -> Path:
        return self.authority_key_file or self.data_dir / "authority.pub.jwk"

    @property
    def builtin_issuer_enabled(self) -> bool:
        if self.builtin_issuer is not None:
            return self.builtin_issuer
        return self.environment != "production"

    @property
    def signing_key_file(self) -> Path:
        return self.data_dir / "node-signing.pem"

    @property
    def kek_path(self) -> Path:
        return self.kek_file or self.data_dir / "kek.json"

    @property
    def audit_key_file(self) -> Path:
        return self.data_dir / "audit-keys.json"

    @property
    def log_origin(self) -> str:
        """The audit log's origin line: unique per node (C2SP checkpoint origin)."""
        return f"police-gateway/force-{self.force_code}"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'node.db').as_posix()}"
