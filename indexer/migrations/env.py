"""Alembic environment of the indexer: every table on `indexer.db.metadata`."""

from __future__ import annotations

from alembic import context

import indexer.api.auth  # registers the login nonce table
import indexer.schema
import indexer.telemetry  # registers its tables on the metadata
from indexer.config import IndexerSettings
from indexer.db import make_engine, metadata

_ = indexer.schema
config = context.config
target_metadata = metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or IndexerSettings().database_url


def run_offline() -> None:
    """Emits SQL instead of running it."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Runs the migrations on a connection (given in `config.attributes` or made from the URL)."""
    given = config.attributes.get("connection")
    if given is not None:
        context.configure(connection=given, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
