"""Ledger tables. Money is stored as integer micro-dollars (1 USD = 1_000_000) so sums are exact.

One model for SQLite (embedded default) and PostgreSQL (production); Alembic owns the DDL.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    price_monthly_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    monthly_cost_cap_micros: Mapped[int] = mapped_column(BigInteger)


class PlanLimit(Base):
    __tablename__ = "plan_limits"

    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), primary_key=True)
    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    max_units: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """None = unlimited (only where the plan says so); 0 = none allowed."""


class Account(Base):
    __tablename__ = "accounts"

    user_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    period_anchor_day: Mapped[int] = mapped_column(Integer, default=1)
    """Day of month (1–28) on which the user's billing period starts."""
    credit_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    """Extra monthly budget granted by an admin on top of the plan's cost cap."""
    cost_cap_override_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """A per-user monthly cap that replaces the plan's (custom budgets); None = the plan's."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UsagePeriod(Base):
    """Money counters for one user and billing period (the cost cap checks these)."""

    __tablename__ = "usage_periods"

    user_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    cost_used_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_reserved_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    provider_cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    """What the providers billed us for this user's predictions, delivered or not."""


class UsageCounter(Base):
    """Unit counters per quota category: pre-flight checks and settlement move these same rows."""

    __tablename__ = "usage_counters"

    user_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    used_units: Mapped[int] = mapped_column(Integer, default=0)
    reserved_units: Mapped[int] = mapped_column(Integer, default=0)


class Reservation(Base):
    __tablename__ = "reservations"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    operation_id: Mapped[str] = mapped_column(String(160), unique=True)
    user_id: Mapped[str] = mapped_column(String(120))
    period: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    units: Mapped[int] = mapped_column(Integer)
    unit_price_micros: Mapped[int] = mapped_column(BigInteger)
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    """held → settled | released | expired."""
    model_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    workflow_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    charged_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_reservations_state_expires", "state", "expires_at"),)


class UsageEvent(Base):
    """Append-only log. ``idempotency_key`` makes every replay or retry of a write a no-op."""

    __tablename__ = "usage_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    """reserve | charge | release | expire | refund | provider_cost."""
    user_id: Mapped[str] = mapped_column(String(120))
    period: Mapped[str] = mapped_column(String(16))
    operation_id: Mapped[str | None] = mapped_column(String(160), nullable=True)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    units: Mapped[int] = mapped_column(Integer, default=0)
    amount_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    model_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    prediction_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    provider: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """Who billed a ``provider_cost`` (wavespeed, stability, ...): read from the prediction's
    submission record, never from workflow input; None on the other kinds."""

    __table_args__ = (Index("ix_usage_events_user_period", "user_id", "period"),)


class SubmissionRecord(Base):
    """Intent and outcome of every paid submit, written before and after the POST.

    A retry that finds an intent without a prediction id knows the earlier POST is ambiguous and
    reconciles it against WaveSpeed's prediction list instead of paying again.
    """

    __tablename__ = "submissions"

    submission_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    operation_id: Mapped[str] = mapped_column(String(160), index=True)
    user_id: Mapped[str] = mapped_column(String(120))
    model_path: Mapped[str] = mapped_column(String(200))
    body_sha256: Mapped[str] = mapped_column(String(64))
    body_json: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    """intent → accepted | refused."""
    prediction_id: Mapped[str | None] = mapped_column(String(120), unique=True, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    intent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reconciled: Mapped[int] = mapped_column(Integer, default=0)


class MediaUpload(Base):
    """Inputs already uploaded to a provider (kept there 7 days), so retries don't re-upload."""

    __tablename__ = "media_uploads"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider_url: Mapped[str] = mapped_column(String(255), primary_key=True)
    download_url: Mapped[str] = mapped_column(Text)
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PipelineRun(Base):
    """A pipeline run as submitted: the definition it ran and what it resumes."""

    __tablename__ = "pipeline_runs"

    pipeline_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(120), index=True)
    name: Mapped[str] = mapped_column(String(120))
    definition_json: Mapped[str] = mapped_column(Text)
    resume_of: Mapped[str | None] = mapped_column(String(200), nullable=True)
    quoted_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StepResult(Base):
    """Stored outputs of a completed pipeline step, found again by the step's fingerprint."""

    __tablename__ = "step_results"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(120))
    pipeline_id: Mapped[str] = mapped_column(String(200), index=True)
    step: Mapped[str] = mapped_column(String(120))
    run_index: Mapped[int] = mapped_column(Integer, default=0)
    deterministic: Mapped[int] = mapped_column(Integer, default=0)
    outputs_json: Mapped[str] = mapped_column(Text)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("uq_step_results_run", "pipeline_id", "step", "run_index", unique=True),
    )


class BalanceSnapshot(Base):
    """The provider account balance at a moment: reconciliation compares consecutive ones."""

    __tablename__ = "balance_snapshots"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    provider_url: Mapped[str] = mapped_column(String(255))
    balance_micros: Mapped[int] = mapped_column(BigInteger)
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Reconciliation(Base):
    """Provider spend by the balance vs. provider cost in the ledger, for one window."""

    __tablename__ = "reconciliations"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    provider_url: Mapped[str] = mapped_column(String(255))
    provider: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """Whose balance and provider costs were compared (None before revision 0007: wavespeed)."""
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    balance_spent_micros: Mapped[int] = mapped_column(BigInteger)
    ledger_cost_micros: Mapped[int] = mapped_column(BigInteger)
    drift_micros: Mapped[int] = mapped_column(BigInteger)
    """Spent by the balance minus recorded provider cost: positive = billed more than we know of."""
    flagged: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cumulative_drift_micros: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Running total of drift since the first window (or the last reset): a steady leak grows it."""
    cumulative_spent_micros: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    flags: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why the window was flagged, one reason a line."""
    unmatched_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Predictions the window could not match (JSON list), or null when they were not checked."""


class BlobOwner(Base):
    """Who may read a stored file: its uploader, or the user whose operation produced it."""

    __tablename__ = "blob_owners"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunRecord(Base):
    """Every operation and pipeline run, kept after Temporal's retention forgets it.

    Written when the run is started (who, what kind, the caller's key and a fingerprint of the
    request) and when it ends (status, result with blob references and texts, cost, error). One
    key per user: the same key for another request is refused, never answered with this run.
    """

    __tablename__ = "run_records"
    __table_args__ = (UniqueConstraint("user_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(120), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    """operation | pipeline"""
    operation: Mapped[str] = mapped_column(String(120))
    """The operation (``text_to_image``) or the pipeline's name."""
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    error_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
