"""Rewards: the depth of each epoch's tree level stored on-chain (`Rewards.cacheLevel`).

Revision ID: 0009_reward_cached_depth
Revises: 0008_geo_regions
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_reward_cached_depth"
down_revision = "0008_geo_regions"
branch_labels = None
depends_on = None

TABLE = "reward_epochs"
COLUMN = "cached_depth"


def _has_column() -> bool:
    return COLUMN in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}


def upgrade() -> None:
    """Adds the column; 0005 creates it already on a database made from the current schema."""
    if not _has_column():
        op.add_column(
            TABLE,
            sa.Column(
                COLUMN,
                sa.Integer(),
                nullable=False,
                server_default="0",
                comment="claims' proofs may stop this deep; 0: at the root",
            ),
        )


def downgrade() -> None:
    """Drops it."""
    if _has_column():
        with op.batch_alter_table(TABLE) as batch:
            batch.drop_column(COLUMN)
