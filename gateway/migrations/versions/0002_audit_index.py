"""Searchable audit index (derived from the audit log, rebuildable).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_index",
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False, index=True),
        sa.Column("user_id", sa.String(128), nullable=True, index=True),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("actor_force", sa.String(8), nullable=True, index=True),
        sa.Column("purpose", sa.String(32), nullable=True),
        sa.Column("case_ref", sa.String(64), nullable=True, index=True),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("recipient_force", sa.String(8), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_audit_index_time", "audit_index", ["time"])
    op.create_table(
        "audit_index_records",
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("force", sa.String(8), nullable=False),
    )
    op.create_index("ix_audit_index_records_record", "audit_index_records", ["record_id"])


def downgrade() -> None:
    op.drop_table("audit_index_records")
    op.drop_table("audit_index")
