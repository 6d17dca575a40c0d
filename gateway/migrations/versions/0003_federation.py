"""Federation state: witnessed partner checkpoints, collected cosignatures, fork evidence.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_witness_state",
        sa.Column("force", sa.String(8), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "federation_seen_checkpoints",
        sa.Column("force", sa.String(8), primary_key=True),
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "federation_cosignatures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("witness_force", sa.String(8), nullable=False, index=True),
        sa.Column("size", sa.BigInteger, nullable=False, index=True),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "federation_forks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("force", sa.String(8), nullable=False, index=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("note_a", sa.Text, nullable=False),
        sa.Column("note_b", sa.Text, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("federation_forks")
    op.drop_table("federation_cosignatures")
    op.drop_table("federation_seen_checkpoints")
    op.drop_table("federation_witness_state")
