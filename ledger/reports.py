"""Reading the books: one reservation, stale holds, a user's usage, events and their totals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger.book import LedgerBook
from ledger.db import reading
from ledger.rows import ensure_account, monthly_cap_micros, reservation_info
from ledger.schema import Plan, PlanLimit, Reservation, UsageCounter, UsageEvent, UsagePeriod
from ledger.values import (
    CounterInfo,
    ReservationInfo,
    UsageSummary,
    billing_period,
    from_micros,
    utcnow,
)


class ReportBook(LedgerBook):
    """Queries; nothing here writes except creating a missing account on first look."""

    def reservation(self, operation_id: str) -> ReservationInfo | None:
        """The operation's reservation, if it has one."""
        with Session(reading(self.engine)) as s:
            row = s.scalar(select(Reservation).where(Reservation.operation_id == operation_id))
            return reservation_info(row) if row else None

    def stale_reservations(
        self, *, now: datetime | None = None, limit: int = 500
    ) -> list[ReservationInfo]:
        """Holds past their expiry: candidates for ``expire`` once their workflow is gone."""
        now = now or utcnow()
        with Session(reading(self.engine)) as s:
            rows = s.scalars(
                select(Reservation)
                .where(Reservation.state == "held", Reservation.expires_at < now)
                .order_by(Reservation.expires_at)
                .limit(limit)
            )
            return [reservation_info(r) for r in rows]

    def usage(
        self, user_id: str, *, now: datetime | None = None, period: str | None = None
    ) -> UsageSummary:
        """The user's plan, period, money and units used/reserved/limit per category."""
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            account = ensure_account(s, user_id, self.default_plan)
            period = period or billing_period(now, account.period_anchor_day)
            plan = s.get(Plan, account.plan_id)
            assert plan is not None
            money = s.get(UsagePeriod, (user_id, period))
            limits = {
                lim.category: lim.max_units
                for lim in s.scalars(select(PlanLimit).where(PlanLimit.plan_id == plan.id))
            }
            counters = {
                c.category: c
                for c in s.scalars(
                    select(UsageCounter).where(
                        UsageCounter.user_id == user_id, UsageCounter.period == period
                    )
                )
            }
            return UsageSummary(
                user_id=user_id,
                plan=plan.id,
                period=period,
                cost_used=from_micros(money.cost_used_micros if money else 0),
                cost_reserved=from_micros(money.cost_reserved_micros if money else 0),
                cost_cap=from_micros(monthly_cap_micros(plan, account)),
                provider_cost=from_micros(money.provider_cost_micros if money else 0),
                counters={
                    cat: CounterInfo(
                        used=counters[cat].used_units if cat in counters else 0,
                        reserved=counters[cat].reserved_units if cat in counters else 0,
                        limit=lim,
                    )
                    for cat, lim in limits.items()
                },
            )

    def events(
        self, *, user_id: str | None = None, operation_id: str | None = None
    ) -> list[UsageEvent]:
        """The event log, oldest first, for a user and/or an operation."""
        with Session(reading(self.engine)) as s:
            query = select(UsageEvent).order_by(UsageEvent.id)
            if user_id:
                query = query.where(UsageEvent.user_id == user_id)
            if operation_id:
                query = query.where(UsageEvent.operation_id == operation_id)
            return list(s.scalars(query))

    def event_totals(self, user_id: str, period: str) -> dict[str, tuple[int, int]]:
        """Sum of (units, micros) per event kind: what the summaries must agree with."""
        with Session(reading(self.engine)) as s:
            rows = s.execute(
                select(
                    UsageEvent.kind, func.sum(UsageEvent.units), func.sum(UsageEvent.amount_micros)
                )
                .where(UsageEvent.user_id == user_id, UsageEvent.period == period)
                .group_by(UsageEvent.kind)
            )
            return {kind: (int(units or 0), int(micros or 0)) for kind, units, micros in rows}
