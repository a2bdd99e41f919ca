"""Indexes for the API's filters: vehicles by year, devices by manufacturer, sales by product.

Revision ID: 0004_api_indexes
Revises: 0003_api
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Index

from indexer import schema as s

revision = "0004_api_indexes"
down_revision = "0003_api"
branch_labels = None
depends_on = None

#: (table, columns) of the indexes this revision adds.
ADDED = (
    (s.vehicles, ("year",)),
    (s.devices, ("manufacturer_id",)),
    (s.purchases, ("product_id", "block_number")),
)


def _indexes() -> list[Index]:
    found = []
    for table, cols in ADDED:
        for index in table.indexes:
            if tuple(c.name for c in index.columns) == cols:
                found.append(index)
    return found


def upgrade() -> None:
    """Creates the indexes (a database made from the current tables already has them)."""
    bind = op.get_bind()
    for index in _indexes():
        index.create(bind, checkfirst=True)


def downgrade() -> None:
    """Drops the indexes."""
    bind = op.get_bind()
    for index in _indexes():
        index.drop(bind, checkfirst=True)
