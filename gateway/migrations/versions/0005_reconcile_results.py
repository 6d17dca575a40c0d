"""History of reconcile runs per partner (shown on the auditor console's integrity page).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_reconcile_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("force", sa.String(8), nullable=False, index=True),
        sa.Column("checked", sa.Integer, nullable=False),
        sa.Column("problems", sa.Integer, nullable=False),
        sa.Column("witnessed_size", sa.Integer, nullable=True),
        sa.Column("first_problem", sa.String(300), nullable=True),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("federation_reconcile_results")
