"""Registered force-system clients (records management systems) of this node."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class ClientRow(SQLModel, table=True):
    __tablename__ = "oauth_clients"

    client_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=100, unique=True)
    secret_hash: str = Field(max_length=200)  # argon2id; the secret itself is shown once
    scopes: str = Field(max_length=400)  # space-separated
    failed_attempts: int = 0
    locked_until: datetime | None = None
    disabled: bool = False
    created_at: datetime
