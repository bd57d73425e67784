"""Each version's explanation summary: its background sample and global importance.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add model_versions.explanation (null for versions registered before: no summary)."""
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("explanation", sa.JSON, nullable=True))


def downgrade() -> None:
    """Drop model_versions.explanation."""
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("explanation")
