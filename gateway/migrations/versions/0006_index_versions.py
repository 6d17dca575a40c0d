"""Blind-index key versions, so that key rotation can re-index while the node serves.

`index_versions` says which versions exist and what each is for (`building`: being filled by a
re-index, written by every writer but not yet searched; `active`: searched; `previous`: still
written until retired, so that a node that has not yet seen the switch keeps finding records;
`retired`: its tags and root secret are gone). `records.index_version` is the newest version a
record's tags were written for: a re-index resumes from the records below its target.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "index_versions",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    now = datetime.now(UTC)
    # Every node so far has one index version, 1, created by `gateway init`.
    op.bulk_insert(
        table, [{"version": 1, "state": "active", "created_at": now, "activated_at": now}]
    )
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("index_version", sa.Integer, nullable=False, server_default="1"))
    op.create_index("ix_records_index_version", "records", ["index_version"])


def downgrade() -> None:
    op.drop_index("ix_records_index_version", table_name="records")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("index_version")
    op.drop_table("index_versions")
