"""Initial node tables: records, data keys, search terms, changes, secrets, idempotency, clients.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False, index=True),
        sa.Column("schema_version", sa.String(8), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("classification_rank", sa.Integer, nullable=False),
        sa.Column("handling_code", sa.String(1), nullable=False),
        sa.Column("policy_attrs", sa.JSON, nullable=False),
        sa.Column("class_key", sa.String(64), nullable=False, index=True),
        sa.Column("next_review", sa.Date, nullable=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("data_key_id", sa.String(40), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("change_seq", sa.Integer, nullable=False),
    )
    op.create_table(
        "data_keys",
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("record_id", sa.String(64), nullable=False, unique=True),
        sa.Column("kek_version", sa.String(40), nullable=False, index=True),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "search_terms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("record_id", sa.String(64), nullable=False, index=True),
        sa.Column("term_kind", sa.String(32), nullable=False),
        sa.Column("tag", sa.LargeBinary, nullable=False),
        sa.Column("index_version", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_index("ix_search_terms_lookup", "search_terms", ["term_kind", "tag"])
    op.create_table(
        "changes",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("record_id", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "node_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kek_version", sa.String(40), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("client_id", "key"),
    )
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(200), nullable=False),
        sa.Column("scopes", sa.String(400), nullable=False),
        sa.Column("failed_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "oauth_clients",
        "idempotency_keys",
        "node_secrets",
        "changes",
        "search_terms",
        "data_keys",
        "records",
    ):
        op.drop_table(table)
