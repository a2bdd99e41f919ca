"""Purchases: a sale streams its revenue (issue 18); `share` and `vehicles` give way to
`stream_end`.

Revision ID: 0010_licence_stream
Revises: 0009_reward_cached_depth
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from indexer.schema import Uint256

revision = "0010_licence_stream"
down_revision = "0009_reward_cached_depth"
branch_labels = None
depends_on = None

TABLE = "purchases"


def _columns() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}


def upgrade() -> None:
    """Drops the per-vehicle split of the old rule and adds the stream's end.

    Rows indexed under the old contracts keep their sale; their stream end is unknown (0).
    A database made from the current schema has the new shape already.
    """
    columns = _columns()
    with op.batch_alter_table(TABLE) as batch:
        for old in ("share", "vehicles"):
            if old in columns:
                batch.drop_column(old)
        if "stream_end" not in columns:
            batch.add_column(
                sa.Column(
                    "stream_end",
                    sa.BigInteger(),
                    nullable=False,
                    server_default="0",
                    comment="the product's revenue stream end",
                )
            )


def downgrade() -> None:
    """Restores the old columns (zero) and drops the stream's end."""
    columns = _columns()
    with op.batch_alter_table(TABLE) as batch:
        if "stream_end" in columns:
            batch.drop_column("stream_end")
        for old, comment in (
            ("share", "credited to each opted-in vehicle"),
            ("vehicles", "vehicles opted in at the sale"),
        ):
            if old not in columns:
                batch.add_column(
                    sa.Column(old, Uint256(), nullable=False, server_default="0", comment=comment)
                )
