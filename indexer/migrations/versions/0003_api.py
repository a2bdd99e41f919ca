"""API tables: Sign-In with Ethereum nonces.

Revision ID: 0003_api
Revises: 0002_telemetry
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from indexer.api.auth import login_nonces

revision = "0003_api"
down_revision = "0002_telemetry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Creates the login nonce table."""
    login_nonces.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drops the login nonce table."""
    login_nonces.drop(op.get_bind(), checkfirst=True)
