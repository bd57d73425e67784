"""The hash-chained audit log (from the change log) and API keys.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Turn the change log into the audit log, chaining the entries it holds; create api_keys."""
    from shipyard.core.hashchain import GENESIS, entry_hash
    from shipyard.store.metadata import as_utc

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False, unique=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_model", "audit_log", ["model", "seq"])
    bind = op.get_bind()
    old = sa.table(
        "changes",
        sa.column("id", sa.Integer),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("actor", sa.String),
        sa.column("action", sa.String),
        sa.column("model", sa.String),
        sa.column("version", sa.Integer),
        sa.column("detail", sa.JSON),
    )
    new = sa.table(
        "audit_log",
        *(sa.column(c) for c in ("seq", "actor", "action", "target", "model", "version")),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("detail", sa.JSON),
    )
    prev = GENESIS
    for seq, row in enumerate(bind.execute(sa.select(old).order_by(old.c.id)), start=1):
        target = row.model if row.version is None else f"{row.model}:{row.version}"
        at = as_utc(row.at)
        fields = {
            "seq": seq, "at": at, "actor": row.actor, "action": row.action, "target": target,
            "model": row.model, "version": row.version, "detail": row.detail or {}, "prev_hash": prev,
        }  # fmt: skip
        digest = entry_hash(**fields)
        bind.execute(sa.insert(new).values(**fields, hash=digest))
        prev = digest
    op.drop_index("ix_changes_model", table_name="changes")
    op.drop_table("changes")
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("prefix", sa.String(32), nullable=False, unique=True),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("rate", sa.Float, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    """Back to the plain change log (the chain is dropped); drop api_keys."""
    op.drop_table("api_keys")
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_changes_model", "changes", ["model", "id"])
    op.execute(
        "INSERT INTO changes (at, actor, action, model, version, detail) "
        "SELECT at, actor, action, model, version, detail FROM audit_log WHERE model IS NOT NULL ORDER BY seq"
    )
    op.drop_index("ix_audit_log_model", table_name="audit_log")
    op.drop_table("audit_log")
