"""Records no longer copy their change-feed sequence number (the feed is the changes table).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("change_seq")


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("change_seq", sa.Integer, nullable=False, server_default="0"))
