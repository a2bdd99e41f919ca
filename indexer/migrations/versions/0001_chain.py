"""Chain sync tables: events, blocks, checkpoint and the projections.

Revision ID: 0001_chain
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from alembic import op

from indexer.schema import CHAIN_TABLES

revision = "0001_chain"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Creates the chain tables with their indexes."""
    bind = op.get_bind()
    for table in CHAIN_TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    """Drops the chain tables."""
    bind = op.get_bind()
    for table in reversed(CHAIN_TABLES):
        table.drop(bind, checkfirst=True)
