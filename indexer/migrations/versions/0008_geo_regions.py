"""Grid integration: geometric regions (GeoJSON areas) published by utilities.

Revision ID: 0008_geo_regions
Revises: 0007_settlement_payments
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

from indexer.apps.energy import GEO_REGION_TABLES

revision = "0008_geo_regions"
down_revision = "0007_settlement_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Creates the geometric region table."""
    bind = op.get_bind()
    for table in GEO_REGION_TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    """Drops it."""
    bind = op.get_bind()
    for table in reversed(GEO_REGION_TABLES):
        table.drop(bind, checkfirst=True)
