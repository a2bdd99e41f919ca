"""Rewards: posted epochs, claims, and the allocation documents with each vehicle's proof.

Revision ID: 0005_rewards
Revises: 0004_api_indexes
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from indexer.reward_docs import REWARD_DOCUMENT_TABLES
from indexer.schema import REWARD_PROJECTIONS

revision = "0005_rewards"
down_revision = "0004_api_indexes"
branch_labels = None
depends_on = None

TABLES = (*REWARD_PROJECTIONS, *REWARD_DOCUMENT_TABLES)


def upgrade() -> None:
    """Creates the rewards tables."""
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    """Drops the rewards tables."""
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind, checkfirst=True)
