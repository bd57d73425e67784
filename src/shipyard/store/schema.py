"""The metadata tables. Alembic migrations in `migrations/` create and change them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "HEAD_REVISION",
    "alerts",
    "aliases",
    "api_keys",
    "audit_log",
    "batch_jobs",
    "batch_units",
    "deployment_arms",
    "deployments",
    "evaluations",
    "feedback",
    "gate_results",
    "leases",
    "metadata",
    "model_versions",
    "models",
    "rollout_history",
    "rollouts",
    "schedule_runs",
    "schedules",
    "signatures",
    "tags",
]

# The newest migration; a test keeps it equal to the head of `migrations/versions`.
HEAD_REVISION = "0010"

metadata = MetaData()

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("next_version", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("artifact_digest", String(64), nullable=False),
    Column("artifact_size", BigInteger, nullable=False),
    Column("contract", JSON, nullable=False),
    Column("profile", JSON, nullable=True),
    # The background sample explainers use and the global importance (mean |attribution|),
    # computed at registration; null for versions registered without training data or before.
    Column("explanation", JSON, nullable=True),
    Column("metrics", JSON, nullable=False),
    Column("lineage", JSON, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("model_id", "alias", name="uq_aliases_model_alias"),
)

tags = Table(
    "tags",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    # 0 tags the registered model itself; N tags version N.
    Column("version", Integer, nullable=False),
    Column("key", String(64), nullable=False),
    Column("value", Text, nullable=False),
    UniqueConstraint("model_id", "version", "key", name="uq_tags_model_version_key"),
)

# The audit log (security/audit.py): every change, hash-chained. `seq` counts from 1 without
# gaps; `hash` covers the entry and `prev_hash`, the hash of the entry before it.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False),
    Column("model", String(128), nullable=True),
    Column("version", Integer, nullable=True),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_model", "model", "seq"),
)

# Signatures of versions (security/signing.py): Ed25519 over the version's manifest.
signatures = Table(
    "signatures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    UniqueConstraint("model", "version", "key_id", name="uq_signatures_version_key"),
)

# API keys (security/keys.py): only a slow hash of the secret is kept; `prefix` finds the row.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("prefix", String(32), nullable=False, unique=True),
    Column("salt", String(64), nullable=False),
    Column("hash", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("models", JSON, nullable=False),
    Column("rate", Float, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    # The SHA-256 of the rows evaluated: evaluations on the same data can be compared.
    Column("data_fingerprint", String(64), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("body", JSON, nullable=False),
)

gate_results = Table(
    "gate_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    # The alias the version was checked for, and the version behind it at the time.
    Column("alias", String(64), nullable=False),
    Column("champion_version", Integer, nullable=True),
    Column("policy_digest", String(64), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("body", JSON, nullable=False),
)

# Labels that arrived after the prediction, joined to the prediction log by request id and row.
# Rows are only ever added; a later label for the same request and row supersedes an earlier one.
feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False, index=True),
    Column("row", Integer, nullable=False),
    Column("label", Text, nullable=False),  # the label as JSON, so 1, "fraud" and 0.5 keep their type
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    Column("source", String(256), nullable=False),
    Column("actor", String(128), nullable=False),
)

# One row per alert episode: opened when a rule's condition starts to hold, closed when it stops.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("rule", String(256), nullable=False),
    Column("state", String(16), nullable=False),  # firing | resolved
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("checks", Integer, nullable=False),
    Column("detail", JSON, nullable=False),
)

# A named endpoint: the model it serves, the alias it follows (if any), and its arms below.
# `generation` grows with every change, so serving replicas notice one with a one-row read.
deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("model", String(128), nullable=False),
    Column("alias", String(64), nullable=True),
    Column("sticky", String(256), nullable=True),  # 'header:NAME' or 'feature:NAME'
    Column("generation", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

deployment_arms = Table(
    "deployment_arms",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment_id", Integer, ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("role", String(16), nullable=False),  # stable | canary | shadow
    # Percent of requests: stable and canary add up to 100; a shadow's is the share copied to it.
    Column("weight", Float, nullable=False),
    UniqueConstraint("deployment_id", "version", name="uq_deployment_arms_version"),
)

# A rollout of one version to a deployment. `active` holds the deployment's id while the rollout
# runs and NULL after, so the unique key allows one running rollout per deployment.
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment_id", Integer, ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False),
    Column("active", Integer, nullable=True, unique=True),
    Column("version", Integer, nullable=False),
    Column("from_version", Integer, nullable=False),
    Column("strategy", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("step", Integer, nullable=False),
    Column("step_started_at", DateTime(timezone=True), nullable=False),
    Column("plan", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

# Every step, verdict and reason of a rollout, in order; rows are only ever added.
rollout_history = Table(
    "rollout_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rollout_id", Integer, ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("step", Integer, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("detail", JSON, nullable=False),
)

# Leases: at most one holder of a name at a time (the rollout controller across replicas).
leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# A batch job: the version it scores, its inputs (with fingerprints) and output, and how it ended.
batch_jobs = Table(
    "batch_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("ref", String(256), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("output", Text, nullable=False),
    Column("options", JSON, nullable=False),
    Column("state", String(16), nullable=False),  # running | succeeded | failed
    Column("holder", String(256), nullable=False),  # host:pid of the process that runs it
    Column("error", Text, nullable=True),
    Column("actor", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

# The units (Parquet row groups, or fixed runs of CSV/JSON Lines rows) a job finished: written
# after the unit's parts were renamed into place, so a resume skips exactly these.
batch_units = Table(
    "batch_units",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("batch_jobs.id", ondelete="CASCADE"), nullable=False),
    Column("source", Integer, nullable=False),
    Column("unit", Integer, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("scored", BigInteger, nullable=False),
    Column("rejected", BigInteger, nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("job_id", "source", "unit", name="uq_batch_units_unit"),
)

# A schedule: a shipyard command (its arguments) run at the times a cron expression names (UTC).
schedules = Table(
    "schedules",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("cron", String(128), nullable=False),
    Column("args", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("last_due_at", DateTime(timezone=True), nullable=True),  # the latest due time claimed
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("run_as", JSON, nullable=True),  # the principal that added it, which its runs act as
)

# Each due time a scheduler claimed: unique, so two schedulers never both start one.
schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule", String(128), ForeignKey("schedules.name", ondelete="CASCADE"), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("holder", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # running | succeeded | failed | skipped
    Column("exit_code", Integer, nullable=True),
    Column("output", Text, nullable=False),
    UniqueConstraint("schedule", "due_at", name="uq_schedule_runs_due"),
)
