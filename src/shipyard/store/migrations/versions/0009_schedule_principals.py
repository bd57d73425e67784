"""The principal each schedule's runs act as.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add schedules.run_as (null for schedules added before: they run as the scheduler)."""
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(sa.Column("run_as", sa.JSON, nullable=True))


def downgrade() -> None:
    """Drop schedules.run_as."""
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("run_as")
