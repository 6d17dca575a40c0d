"""Force-system clients: registration, secret checking and lock-out after repeated failures.

Secrets are random, shown once, and stored as argon2id hashes. Five failed authentications lock
a client for ten minutes (CJIS Security Policy 5.5.3 style); the caller audits each failure.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from gateway.identity.tables import ClientRow

KNOWN_SCOPES = frozenset({"records:write", "records:read", "audit:read"})
MAX_FAILED_ATTEMPTS = 5
LOCKOUT = timedelta(minutes=10)

_hasher = PasswordHasher()
# Verifying against this hash when the client is unknown keeps the timing of "no such client"
# and "wrong secret" alike.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class ClientError(Exception):
    pass


@dataclass(frozen=True)
class NewClient:
    client_id: str
    name: str
    secret: str
    scopes: list[str]


def _now() -> datetime:
    return datetime.now(UTC)


def parse_scopes(raw: str) -> list[str]:
    scopes = sorted({s.strip() for s in raw.replace(",", " ").split() if s.strip()})
    allowed = ", ".join(sorted(KNOWN_SCOPES))
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if unknown:
        raise ClientError(f"unknown scope(s): {', '.join(unknown)}; allowed: {allowed}")
    if not scopes:
        raise ClientError(f"a client needs at least one scope; allowed: {allowed}")
    return scopes


async def add_client(*, session: AsyncSession, name: str, scopes: list[str]) -> NewClient:
    existing = (await session.execute(select(ClientRow).where(ClientRow.name == name))).first()
    if existing is not None:
        raise ClientError(f"a client named {name!r} already exists")
    client_id = "cli_" + secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    session.add(
        ClientRow(
            client_id=client_id,
            name=name,
            secret_hash=_hasher.hash(secret),
            scopes=" ".join(scopes),
            created_at=_now(),
        )
    )
    await session.flush()
    return NewClient(client_id=client_id, name=name, secret=secret, scopes=scopes)


async def get_client(*, session: AsyncSession, client_id: str) -> ClientRow | None:
    return await session.get(ClientRow, client_id)


def is_locked(client: ClientRow, now: datetime | None = None) -> bool:
    now = now or _now()
    return client.locked_until is not None and client.locked_until > now


def check_secret(client: ClientRow | None, secret: str) -> bool:
    """Constant-time in the hash sense: argon2 verification costs the same for any wrong secret."""
    try:
        return _hasher.verify(client.secret_hash if client else _DUMMY_HASH, secret) and bool(
            client
        )
    except (VerificationError, InvalidHashError):
        return False


def record_failure(client: ClientRow, now: datetime | None = None) -> bool:
    """Count a failed authentication; returns True when this failure locked the client."""
    now = now or _now()
    client.failed_attempts += 1
    if client.failed_attempts >= MAX_FAILED_ATTEMPTS:
        client.locked_until = now + LOCKOUT
        client.failed_attempts = 0
        return True
    return False


def record_success(client: ClientRow) -> None:
    client.failed_attempts = 0
    client.locked_until = None
