"""Settlements paid through the data market: each payment and each vehicle's credit.

Revision ID: 0007_settlement_payments
Revises: 0006_energy
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

from indexer.schema import SETTLEMENT_PROJECTIONS

revision = "0007_settlement_payments"
down_revision = "0006_energy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Creates the settlement tables."""
    bind = op.get_bind()
    for table in SETTLEMENT_PROJECTIONS:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    """Drops the settlement tables."""
    bind = op.get_bind()
    for table in reversed(SETTLEMENT_PROJECTIONS):
        table.drop(bind, checkfirst=True)
