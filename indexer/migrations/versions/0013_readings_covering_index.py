"""The readings' series index covers the batch and leaf as well as the value (issue 21).

`first`, `last`, `min` and `max` rank a bucket's readings by time, then batch and leaf, and a
proof needs the reading's batch and leaf: with only the value in the index, each of those
statements read one heap page per reading (a vehicle's readings are spread over the table in
arrival order). With the batch and leaf included they are index-only scans, as `avg` was.

Revision ID: 0013_readings_covering_index
Revises: 0012_vehicle_credentials
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_readings_covering_index"
down_revision = "0012_vehicle_credentials"
branch_labels = None
depends_on = None

INDEX = "ix_readings_vehicle_id_signal_ts"
KEY = ["vehicle_id", "signal", "ts"]


def _included() -> list[str] | None:
    """The columns the index includes on PostgreSQL; None on another database."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return None  # INCLUDE is PostgreSQL's: elsewhere the index is the key alone
    for index in sa.inspect(bind).get_indexes("readings"):
        if index["name"] == INDEX:
            return list(index.get("dialect_options", {}).get("postgresql_include") or [])
    return []


def _rebuild(include: list[str]) -> None:
    op.drop_index(INDEX, table_name="readings", if_exists=True)
    op.create_index(INDEX, "readings", KEY, postgresql_include=include)


def upgrade() -> None:
    """Rebuilds the index with the batch and leaf (a database made from the current tables
    has that index already)."""
    included = _included()
    if included is not None and "leaf_index" not in included:
        _rebuild(["value", "batch_id", "leaf_index"])


def downgrade() -> None:
    """Rebuilds the index with the value alone."""
    included = _included()
    if included is not None and "leaf_index" in included:
        _rebuild(["value"])
