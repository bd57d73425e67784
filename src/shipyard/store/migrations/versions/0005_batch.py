"""Batch jobs and the units each one finished.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the batch_jobs and batch_units tables."""
    op.create_table(
        "batch_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("ref", sa.String(256), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "batch_units",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "job_id", sa.String(32), sa.ForeignKey("batch_jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("source", sa.Integer, nullable=False),
        sa.Column("unit", sa.Integer, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("scored", sa.BigInteger, nullable=False),
        sa.Column("rejected", sa.BigInteger, nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("job_id", "source", "unit", name="uq_batch_units_unit"),
    )


def downgrade() -> None:
    """Drop the batch tables."""
    op.drop_table("batch_units")
    op.drop_table("batch_jobs")
