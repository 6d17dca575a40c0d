"""Alembic environment: runs migrations on a synchronous connection to the node's database."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from gateway.migrations.runner import sync_url

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""
assert url, "the runner passes the database URL"


def run() -> None:
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
