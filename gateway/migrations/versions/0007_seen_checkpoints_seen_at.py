"""An index on federation_seen_checkpoints.seen_at, for the retention prune.

The federation loop deletes seen partner checkpoints older than the retention period after every
cosignature round (`prune_seen_checkpoints`); without this index each round would read the
whole table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_federation_seen_checkpoints_seen_at", "federation_seen_checkpoints", ["seen_at"]
    )


def downgrade() -> None:
    op.drop_index(
        "ix_federation_seen_checkpoints_seen_at", table_name="federation_seen_checkpoints"
    )
