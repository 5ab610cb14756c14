"""Row-level building blocks every ledger module shares: conditional inserts, holds and their
events, counter moves. Each runs inside the caller's transaction (``s``); none commits."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert, Update

from ledger.schema import (
    Account,
    Plan,
    Reservation,
    SubmissionRecord,
    UsageCounter,
    UsageEvent,
    UsagePeriod,
)
from ledger.values import DEFAULT_PROVIDER, ReservationInfo, from_micros, path_provider, utcnow

UNANSWERED = "unanswered:"
"""Prefix of the provider cost key of a POST that saw no answer (then the submission id)."""
INLINE_ID = re.compile(r"^([a-z]+)-[0-9a-f]{64}-[0-9a-f]{16}$")
"""An inline provider's prediction id: ``{provider}-{output sha256}-{digest}``."""


def insert_ignore(s: Session, model: type, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on either backend; True when a row was inserted.

    Whether the row went in is read from RETURNING, not from the rowcount, which PostgreSQL's
    driver reports as -1 for these statements.
    """
    table = model.__table__  # type: ignore[attr-defined]
    dialect = s.get_bind().dialect.name
    stmt: Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - other backends are not supported yet
        raise NotImplementedError(f"ledger backend {dialect} is not supported")
    return s.execute(stmt.returning(*table.primary_key.columns)).first() is not None


def rows_changed(s: Session, statement: Update) -> int:
    """Rows a conditional ``UPDATE`` changed: 0 means its ``WHERE`` (the limit) said no.

    ``Session.execute`` is typed as returning ``Result``; for DML it is a ``CursorResult``.
    """
    return cast(CursorResult[Any], s.execute(statement)).rowcount


def rows_changed_creating(s: Session, statement: Update, model: type, zero: dict[str, Any]) -> int:
    """``rows_changed`` on a row that may not exist yet (a counter's first use in a period).

    The UPDATE runs first: the row almost always exists, so that is one statement. Only when it
    changed nothing is the zero row inserted (if missing; a concurrent first use may have just
    made it) and the UPDATE tried once more, so 0 still means the limit said no.
    """
    changed = rows_changed(s, statement)
    if changed == 0:
        insert_ignore(s, model, zero)
        changed = rows_changed(s, statement)
    return changed


def zero_period(user_id: str, period: str) -> dict[str, Any]:
    """A new money row for a billing period: nothing used, reserved or billed."""
    return {
        "user_id": user_id,
        "period": period,
        "cost_used_micros": 0,
        "cost_reserved_micros": 0,
        "provider_cost_micros": 0,
    }


def zero_counter(user_id: str, period: str, category: str) -> dict[str, Any]:
    """A new unit counter for a category in a billing period."""
    return {
        "user_id": user_id,
        "period": period,
        "category": category,
        "used_units": 0,
        "reserved_units": 0,
    }


def locked_reservation(s: Session, operation_id: str) -> Reservation:
    """The operation's reservation, row-locked for this transaction."""
    row = s.scalar(
        select(Reservation).where(Reservation.operation_id == operation_id).with_for_update()
    )
    if row is None:
        raise LookupError(f"no reservation for operation {operation_id}")
    return row


def open_hold(
    s: Session,
    reservation_id: str,
    operation_id: str,
    user_id: str,
    period: str,
    category: str,
    units: int,
    unit_price_micros: int,
    amount: int,
    model_id: str | None,
    workflow_id: str | None,
    now: datetime,
    expires_at: datetime,
    *,
    event: str,
    note: str | None = None,
) -> Reservation:
    """A new held reservation and its ``reserve``/``draw`` event (the counters move elsewhere)."""
    row = Reservation(
        id=reservation_id,
        operation_id=operation_id,
        user_id=user_id,
        period=period,
        category=category,
        units=units,
        unit_price_micros=unit_price_micros,
        amount_micros=amount,
        state="held",
        model_id=model_id,
        workflow_id=workflow_id,
        charged_micros=0,
        created_at=now,
        expires_at=expires_at,
    )
    s.add(row)
    s.add(
        usage_event(
            f"{event}:{operation_id}", event, row, units=units, amount=amount, now=now, note=note
        )
    )
    return row


def usage_event(
    key: str,
    kind: str,
    row: Reservation,
    *,
    units: int,
    amount: int,
    now: datetime,
    note: str | None = None,
) -> UsageEvent:
    """An event row for a hold (not yet added to the session)."""
    return UsageEvent(
        idempotency_key=key,
        kind=kind,
        user_id=row.user_id,
        period=row.period,
        operation_id=row.operation_id,
        category=row.category,
        units=units,
        amount_micros=amount,
        model_id=row.model_id,
        prediction_id=None,
        note=note,
        created_at=now,
    )


def event_values(event: UsageEvent) -> dict[str, Any]:
    """An event's column values, for a conditional insert."""
    return {c.key: getattr(event, c.key) for c in UsageEvent.__table__.columns if c.key != "id"}


def monthly_cap_micros(plan: Plan, account: Account) -> int:
    """The user's monthly money cap: the plan's (or their own), plus credit."""
    base = (
        account.cost_cap_override_micros
        if account.cost_cap_override_micros is not None
        else plan.monthly_cost_cap_micros
    )
    return base + account.credit_micros


def reservation_info(row: Reservation) -> ReservationInfo:
    """The frozen view of a reservation row callers get."""
    return ReservationInfo(
        reservation_id=row.id,
        operation_id=row.operation_id,
        user_id=row.user_id,
        period=row.period,
        category=row.category,
        units=row.units,
        unit_price=from_micros(row.unit_price_micros),
        amount=from_micros(row.amount_micros),
        state=row.state,
        charged=from_micros(row.charged_micros),
        workflow_id=row.workflow_id,
    )


def ensure_account(s: Session, user_id: str, default_plan: str) -> Account:
    """The user's account row, created on the default plan at first sight."""
    account = s.get(Account, user_id, populate_existing=True)
    if account is not None:
        return account  # the common case: one statement, not an insert attempt first
    insert_ignore(
        s,
        Account,
        {
            "user_id": user_id,
            "plan_id": default_plan,
            "period_anchor_day": 1,
            "credit_micros": 0,
            "created_at": utcnow(),
        },
    )
    account = s.get(Account, user_id, populate_existing=True)
    assert account is not None
    return account


def move_counters(s: Session, row: Reservation, *, used_units: int, used_micros: int) -> None:
    """Take a hold off the reserved counters and add what was used (the same rows pre-flight
    checks, so limits always see settled usage)."""
    counter = UsageCounter.__table__.c
    s.execute(
        update(UsageCounter)
        .where(
            counter.user_id == row.user_id,
            counter.period == row.period,
            counter.category == row.category,
        )
        .values(
            reserved_units=counter.reserved_units - row.units,
            used_units=counter.used_units + used_units,
        )
    )
    money = UsagePeriod.__table__.c
    s.execute(
        update(UsagePeriod)
        .where(money.user_id == row.user_id, money.period == row.period)
        .values(
            cost_reserved_micros=money.cost_reserved_micros - row.amount_micros,
            cost_used_micros=money.cost_used_micros + used_micros,
        )
    )


def close_hold(s: Session, row: Reservation, kind: str, reason: str, now: datetime) -> None:
    """Give a whole hold back (``release`` or ``expire``) with its event."""
    move_counters(s, row, used_units=0, used_micros=0)
    row.state = "released" if kind == "release" else "expired"
    row.closed_at = now
    s.add(
        usage_event(
            f"{kind}:{row.operation_id}",
            kind,
            row,
            units=row.units,
            amount=row.amount_micros,
            now=now,
            note=reason[:500],
        )
    )


def provider_cost(
    s: Session,
    row: Reservation,
    prediction_id: str,
    micros: int,
    now: datetime,
    note: str | None = None,
) -> bool:
    """Record once what the provider billed for ``prediction_id``; True when newly recorded."""
    event = usage_event(
        f"provider_cost:{prediction_id}",
        "provider_cost",
        row,
        units=1,
        amount=micros,
        now=now,
        note=note,
    )
    event.prediction_id = prediction_id
    event.provider = provider_of(s, prediction_id)
    inserted = insert_ignore(s, UsageEvent, event_values(event))
    if inserted:
        money = UsagePeriod.__table__.c
        s.execute(
            update(UsagePeriod)
            .where(money.user_id == row.user_id, money.period == row.period)
            .values(provider_cost_micros=money.provider_cost_micros + micros)
        )
    return inserted


def provider_of(s: Session, prediction_id: str) -> str:
    """Who billed ``prediction_id``, from its submission record (bound to the prediction, or the
    unanswered POST's own); else from an inline id's prefix; else WaveSpeed."""
    records = SubmissionRecord.__table__.c
    if prediction_id.startswith(UNANSWERED):
        submission = prediction_id[len(UNANSWERED) :]
        match = records.submission_id == submission
        if len(prediction_id) >= 120:  # the key was cut at 120 characters
            match = records.submission_id.startswith(submission, autoescape=True)
    else:
        match = records.prediction_id == prediction_id
    paths = s.scalars(select(records.model_path).where(match).limit(2)).all()
    if len(paths) == 1:
        return path_provider(paths[0])
    inline = INLINE_ID.match(prediction_id)
    return inline.group(1) if inline else DEFAULT_PROVIDER
