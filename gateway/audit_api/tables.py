"""A searchable index of the audit log, derived from its entries and rebuilt from them at start-up.

The Merkle log in the audit store is the evidence; this table only makes auditors' filters fast.
If it is lost or tampered with, `rebuild` recreates it from the entries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class AuditIndexRow(SQLModel, table=True):
    __tablename__ = "audit_index"
    __table_args__ = (Index("ix_audit_index_time", "time"),)

    idx: int = Field(primary_key=True)
    time: datetime
    kind: str = Field(max_length=32, index=True)
    user_id: str | None = Field(default=None, max_length=128, index=True)
    client_id: str | None = Field(default=None, max_length=64)
    actor_force: str | None = Field(default=None, max_length=8, index=True)
    purpose: str | None = Field(default=None, max_length=32)
    case_ref: str | None = Field(default=None, max_length=64, index=True)
    decision: str | None = Field(default=None, max_length=32)
    recipient_force: str | None = Field(default=None, max_length=8)
    request_id: str | None = Field(default=None, max_length=64)


class AuditIndexRecordRow(SQLModel, table=True):
    __tablename__ = "audit_index_records"

    idx: int = Field(primary_key=True)
    record_id: str = Field(primary_key=True, max_length=64)
    force: str = Field(max_length=8)
