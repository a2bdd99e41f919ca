"""Developer licences: client ids, signers and redirect URIs (issue 20).

Revision ID: 0011_developer_licences
Revises: 0010_licence_stream
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from indexer.api.devauth import web3_challenges
from indexer.schema import DEVELOPER_PROJECTIONS

revision = "0011_developer_licences"
down_revision = "0010_licence_stream"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Creates the developer licence tables and the login challenges."""
    bind = op.get_bind()
    for table in (*DEVELOPER_PROJECTIONS, web3_challenges):
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    """Drops the developer licence tables and the login challenges."""
    bind = op.get_bind()
    for table in (web3_challenges, *reversed(DEVELOPER_PROJECTIONS)):
        table.drop(bind, checkfirst=True)
