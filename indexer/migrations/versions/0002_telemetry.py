"""Verified telemetry tables: batches, signals, readings, text readings and the bundles index.

Revision ID: 0002_telemetry
Revises: 0001_chain
Create Date: 2026-01-01
"""

from __future__ import annotations

from alembic import op

from indexer.telemetry import TELEMETRY_TABLES

revision = "0002_telemetry"
down_revision = "0001_chain"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Creates the telemetry tables with their indexes."""
    bind = op.get_bind()
    for table in TELEMETRY_TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    """Drops the telemetry tables."""
    bind = op.get_bind()
    for table in reversed(TELEMETRY_TABLES):
        table.drop(bind, checkfirst=True)
