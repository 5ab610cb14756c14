"""Holds: reserve quota and money before anything is paid, for one operation or a whole pipeline.

Every write is one short transaction of conditional ``UPDATE``s (``... WHERE used + reserved + n
<= limit``), so concurrent requests can never overshoot a limit; the counters checked here are the
rows settlement moves (``ledger.charges``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from contracts.errors import OwnershipConflictError, QuotaExceededError
from ledger.book import LedgerBook
from ledger.refusals import cost_refusal, unit_refusal
from ledger.rows import (
    close_hold,
    ensure_account,
    monthly_cap_micros,
    open_hold,
    reservation_info,
    rows_changed,
    rows_changed_creating,
    zero_counter,
    zero_period,
)
from ledger.schema import Account, Plan, PlanLimit, Reservation, UsageCounter, UsagePeriod
from ledger.values import (
    RESERVATION_TTL,
    ReservationInfo,
    billing_period,
    from_micros,
    to_micros,
    utcnow,
)


class HoldBook(LedgerBook):
    """Reservations: hold, draw (pipeline steps), and give back a pipeline's remainder."""

    def reserve(
        self,
        *,
        reservation_id: str,
        operation_id: str,
        user_id: str,
        category: str,
        units: int,
        unit_price: Decimal,
        model_id: str,
        operation: str,
        workflow_id: str | None = None,
        ttl: timedelta = RESERVATION_TTL,
        now: datetime | None = None,
    ) -> ReservationInfo:
        """Hold ``units`` of ``category`` and their price, or raise ``QuotaExceededError``."""
        now = now or utcnow()
        amount = to_micros(unit_price) * units
        with Session(self.engine) as s, s.begin():
            existing = s.scalar(select(Reservation).where(Reservation.operation_id == operation_id))
            if existing is not None:
                same_hold(existing, user_id, model_id, category, units, to_micros(unit_price))
                return reservation_info(existing)
            account, plan, period = self._plan_period(s, user_id, now)
            self._hold(s, account, plan, period, {category: (units, amount)}, operation)
            row = open_hold(
                s,
                reservation_id,
                operation_id,
                user_id,
                period,
                category,
                units,
                to_micros(unit_price),
                amount,
                model_id,
                workflow_id,
                now,
                now + ttl,
                event="reserve",
            )
            s.flush()
            return reservation_info(row)

    def reserve_pipeline(
        self,
        *,
        pipeline_id: str,
        user_id: str,
        lines: dict[str, tuple[int, Decimal]],
        workflow_id: str | None = None,
        ttl: timedelta = RESERVATION_TTL,
        now: datetime | None = None,
    ) -> list[ReservationInfo]:
        """Hold a whole pipeline's worst case (units and USD per category) in one transaction.

        Steps then ``draw`` from these holds, so a pipeline that started can always finish
        within its quote, and the user's limits are checked once, up front.
        """
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            existing = list(
                s.scalars(select(Reservation).where(Reservation.id.like(f"pipe:{pipeline_id}:%")))
            )
            if existing:
                return [reservation_info(r) for r in existing]
            account, plan, period = self._plan_period(s, user_id, now)
            micros = {cat: (units, to_micros(amount)) for cat, (units, amount) in lines.items()}
            self._hold(s, account, plan, period, micros, "pipeline")
            rows = []
            for category, (units, amount) in sorted(micros.items()):
                row = open_hold(
                    s,
                    f"pipe:{pipeline_id}:{category}",
                    f"{pipeline_id}#{category}",
                    user_id,
                    period,
                    category,
                    units,
                    0,
                    amount,
                    None,
                    workflow_id,
                    now,
                    now + ttl,
                    event="reserve",
                )
                rows.append(row)
            s.flush()
            return [reservation_info(r) for r in rows]

    def draw(
        self,
        *,
        pipeline_id: str,
        reservation_id: str,
        operation_id: str,
        category: str,
        units: int,
        unit_price: Decimal,
        model_id: str,
        workflow_id: str | None = None,
        now: datetime | None = None,
    ) -> ReservationInfo:
        """Move part of a pipeline's hold to one step's reservation; the counters do not move."""
        now = now or utcnow()
        amount = to_micros(unit_price) * units
        with Session(self.engine) as s, s.begin():
            parent_id = f"pipe:{pipeline_id}:{category}"
            existing = s.scalar(select(Reservation).where(Reservation.operation_id == operation_id))
            if existing is not None:
                parent_row = s.get(Reservation, parent_id)
                owner = parent_row.user_id if parent_row is not None else ""
                same_hold(existing, owner, model_id, category, units, to_micros(unit_price))
                return reservation_info(existing)
            table = Reservation.__table__.c
            moved = rows_changed(
                s,
                update(Reservation)
                .where(
                    table.id == parent_id,
                    table.state == "held",
                    table.units >= units,
                    table.amount_micros >= amount,
                )
                .values(units=table.units - units, amount_micros=table.amount_micros - amount),
            )
            if moved != 1:
                parent = s.get(Reservation, parent_id)
                left = (
                    f"{parent.units} {category}, ${from_micros(parent.amount_micros)}"
                    if parent
                    else "nothing"
                )
                raise QuotaExceededError(
                    {
                        "error": "Pipeline budget exhausted",
                        "message": f"step {operation_id} needs {units} {category} (${from_micros(amount)}) "
                        f"but pipeline {pipeline_id} has {left} left of its quote",
                        "provider": "wavespeed",
                        "usage_info": {
                            "limit_type": "pipeline_quote",
                            "pipeline_id": pipeline_id,
                            "category": category,
                        },
                    }
                )
            parent = s.get(Reservation, parent_id, populate_existing=True)
            assert parent is not None
            row = open_hold(
                s,
                reservation_id,
                operation_id,
                parent.user_id,
                parent.period,
                category,
                units,
                to_micros(unit_price),
                amount,
                model_id,
                workflow_id,
                now,
                parent.expires_at,
                event="draw",
                note=f"from {parent_id}",
            )
            s.flush()
            return reservation_info(row)

    def release_pipeline(
        self, *, pipeline_id: str, reason: str, now: datetime | None = None
    ) -> Decimal:
        """Give back what is left of a pipeline's holds (whatever the end); idempotent."""
        now = now or utcnow()
        released = 0
        with Session(self.engine) as s, s.begin():
            rows = s.scalars(
                select(Reservation)
                .where(Reservation.id.like(f"pipe:{pipeline_id}:%"), Reservation.state == "held")
                .with_for_update()
            )
            for row in rows:
                released += row.amount_micros
                close_hold(s, row, "release", reason, now)
        return from_micros(released)

    def _plan_period(self, s: Session, user_id: str, now: datetime) -> tuple[Account, Plan, str]:
        account = ensure_account(s, user_id, self.default_plan)
        plan = s.get(Plan, account.plan_id)
        assert plan is not None
        return account, plan, billing_period(now, account.period_anchor_day)

    def _hold(
        self,
        s: Session,
        account: Account,
        plan: Plan,
        period: str,
        lines: dict[str, tuple[int, int]],
        operation: str,
    ) -> None:
        """Raise the reserved counters for every category and the money, or refuse (nothing held)."""
        user_id = account.user_id
        counter = UsageCounter.__table__.c
        for category, (units, _) in sorted(lines.items()):
            limit = s.get(PlanLimit, (plan.id, category))
            max_units = limit.max_units if limit is not None else 0
            room = update(UsageCounter).where(
                counter.user_id == user_id, counter.period == period, counter.category == category
            )
            if max_units is not None:
                room = room.where(counter.used_units + counter.reserved_units + units <= max_units)
            raised = room.values(reserved_units=counter.reserved_units + units)
            zero = zero_counter(user_id, period, category)
            if rows_changed_creating(s, raised, UsageCounter, zero) != 1:
                raise unit_refusal(s, user_id, period, plan, category, units, max_units, operation)
        amount = sum(micros for _, micros in lines.values())
        cap = monthly_cap_micros(plan, account)
        money = UsagePeriod.__table__.c
        budget = (
            update(UsagePeriod)
            .where(money.user_id == user_id, money.period == period)
            .where(money.cost_used_micros + money.cost_reserved_micros + amount <= cap)
            .values(cost_reserved_micros=money.cost_reserved_micros + amount)
        )
        if rows_changed_creating(s, budget, UsagePeriod, zero_period(user_id, period)) != 1:
            raise cost_refusal(
                s, user_id, period, plan, cap, amount, operation, ",".join(sorted(lines))
            )


def same_hold(
    row: Reservation, user_id: str, model_id: str, category: str, units: int, unit_micros: int
) -> None:
    """An existing hold answers a retry of the same request only; anything else is refused."""
    theirs = (row.user_id, row.model_id, row.category, row.units, row.unit_price_micros)
    if theirs[0] != user_id or theirs[1:] != (model_id, category, units, unit_micros):
        raise OwnershipConflictError(
            f"operation {row.operation_id} already holds a reservation for another "
            f"{'user' if theirs[0] != user_id else 'request'}; it is never reused"
        )
