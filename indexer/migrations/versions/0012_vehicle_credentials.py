"""The index of vehicle credentials that `vinVCLatest` reads (issue 21).

Revision ID: 0012_vehicle_credentials
Revises: 0011_developer_licences
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from indexer.api.credentials import vehicle_credentials

revision = "0012_vehicle_credentials"
down_revision = "0011_developer_licences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Creates the credential index."""
    vehicle_credentials.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drops the credential index."""
    vehicle_credentials.drop(op.get_bind(), checkfirst=True)
