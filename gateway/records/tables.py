"""Tables for a force's records, their data keys, blind-index terms and change feed.

A record's document is stored as JSON with every sensitive value replaced by its ciphertext, so
the document alone reveals only metadata policy needs (kind, classification, grading codes...).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


class RecordRow(SQLModel, table=True):
    __tablename__ = "records"

    record_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=40, index=True)
    schema_version: str = Field(max_length=8)
    version: int
    # Attributes policies decide on, kept in the clear and as one key, so a decision can be made
    # once per equivalence class of records.
    classification_rank: int
    handling_code: str = Field(max_length=1)
    policy_attrs: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    class_key: str = Field(max_length=64, index=True)
    next_review: date | None = None
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    data_key_id: str = Field(max_length=40)
    # SHA-256 of the canonical JSON of the record as received: a re-sent identical record is a
    # no-op (bulk retries after a crash must not create new versions).
    content_sha256: str = Field(max_length=64)
    # The newest blind-index version this record's tags were written for (see IndexVersionRow).
    index_version: int = Field(default=1, index=True)
    created_at: datetime
    updated_at: datetime


class DataKeyRow(SQLModel, table=True):
    """A record's data key, wrapped by the force's KEK. Deleting it shreds the record."""

    __tablename__ = "data_keys"

    key_id: str = Field(primary_key=True, max_length=40)
    record_id: str = Field(max_length=64, unique=True)
    kek_version: str = Field(max_length=40, index=True)
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class SearchTermRow(SQLModel, table=True):
    """One blind-index tag of one record (HMAC of a normalised identifier)."""

    __tablename__ = "search_terms"
    __table_args__ = (Index("ix_search_terms_lookup", "term_kind", "tag"),)

    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(max_length=64, index=True)
    term_kind: str = Field(max_length=32)
    tag: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    index_version: int = 1


class ChangeRow(SQLModel, table=True):
    """The ordered change feed a force system resumes from (`GET /v1/changes`)."""

    __tablename__ = "changes"

    seq: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(max_length=64, index=True)
    version: int
    op: str = Field(max_length=8)  # upsert | delete
    reason: str | None = Field(default=None, max_length=32)
    at: datetime


class IndexVersionRow(SQLModel, table=True):
    """One blind-index key version and what it is for (gateway/records/index_versions.py)."""

    __tablename__ = "index_versions"

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    state: str = Field(max_length=16)  # building | active | previous | retired
    created_at: datetime
    activated_at: datetime | None = None
    retired_at: datetime | None = None


class NodeSecretRow(SQLModel, table=True):
    """Node secrets wrapped by the KEK (e.g. the blind-index root secret, per version)."""

    __tablename__ = "node_secrets"

    name: str = Field(primary_key=True, max_length=64)
    kek_version: str = Field(max_length=40)
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime


class IdempotencyRow(SQLModel, table=True):
    """The first result of a bulk upload, replayed when the same Idempotency-Key comes again."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("client_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=64)
    key: str = Field(max_length=128)
    request_sha256: str = Field(max_length=64)
    status_code: int
    response: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime
