"""Grid integration: owners' grid region declarations and OpenADR 3 programs, events, reports.

Revision ID: 0006_energy
Revises: 0005_rewards
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from indexer.apps.energy import ENERGY_TABLES

revision = "0006_energy"
down_revision = "0005_rewards"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Creates the region and OpenADR tables."""
    bind = op.get_bind()
    for table in ENERGY_TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    """Drops them, reports first."""
    bind = op.get_bind()
    for table in reversed(ENERGY_TABLES):
        table.drop(bind, checkfirst=True)
