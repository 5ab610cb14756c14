"""Reserve, settle and release usage; the only code that writes the ledger.

Every write is one short transaction made of conditional ``UPDATE``s (``... WHERE used + reserved
+ n <= limit``), so concurrent requests can never overshoot a limit, and every event carries an
idempotency key, so a retried or replayed activity never counts twice. The counters that
pre-flight checks are the rows settlement moves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from studio.errors import QuotaExceededError
from studio.ledger.schema import (
    Account,
    BlobOwner,
    Plan,
    PlanLimit,
    Reservation,
    UsageCounter,
    UsageEvent,
    UsagePeriod,
)

PLANS_FILE = Path(__file__).with_name("plans.yaml")
MICROS = Decimal(1_000_000)
RESERVATION_TTL = timedelta(hours=24)

CATEGORY_LABELS = {
    "images": ("Image generation", "images"),
    "edits": ("Image editing", "image edits"),
    "face_swaps": ("Face swap", "face swaps"),
    "models_3d": ("3D generation", "3D models"),
    "text": ("Text", "text operations"),
}


def to_micros(amount: Decimal | str | int) -> int:
    return int((Decimal(str(amount)) * MICROS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS).quantize(Decimal("0.000001")).normalize() + Decimal("0.00")


def utcnow() -> datetime:
    return datetime.now(UTC)


def billing_period(now: datetime, anchor_day: int = 1) -> str:
    """Key of the billing period containing ``now``: the month in which it started (``YYYY-MM``),
    or ``YYYY-MM-DD`` when the user's period starts on a day other than the 1st."""
    start_year, start_month = now.year, now.month
    if now.day < anchor_day:
        start_month -= 1
        if start_month == 0:
            start_year, start_month = start_year - 1, 12
    if anchor_day == 1:
        return f"{start_year:04d}-{start_month:02d}"
    return f"{start_year:04d}-{start_month:02d}-{anchor_day:02d}"


@dataclass(frozen=True)
class ReservationInfo:
    reservation_id: str
    operation_id: str
    user_id: str
    period: str
    category: str
    units: int
    unit_price: Decimal
    amount: Decimal
    state: str
    charged: Decimal
    workflow_id: str | None = None


@dataclass(frozen=True)
class SettlementInfo:
    operation_id: str
    charged: Decimal
    released: Decimal
    already_settled: bool


@dataclass(frozen=True)
class CounterInfo:
    used: int
    reserved: int
    limit: int | None


@dataclass(frozen=True)
class UsageSummary:
    user_id: str
    plan: str
    period: str
    cost_used: Decimal
    cost_reserved: Decimal
    cost_cap: Decimal
    provider_cost: Decimal
    counters: dict[str, CounterInfo] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "plan": self.plan,
            "period": self.period,
            "cost_used_usd": str(self.cost_used),
            "cost_reserved_usd": str(self.cost_reserved),
            "cost_cap_usd": str(self.cost_cap),
            "provider_cost_usd": str(self.provider_cost),
            "counters": {
                k: {"used": c.used, "reserved": c.reserved, "limit": c.limit}
                for k, c in self.counters.items()
            },
        }


class Ledger:
    def __init__(self, engine: Engine, *, default_plan: str | None = None) -> None:
        self.engine = engine
        plans = load_plans()
        self.default_plan = default_plan or plans["default_plan"]

    # ------------------------------------------------------------------ plans & accounts

    def sync_plans(self) -> None:
        """Upsert plans and limits from ``plans.yaml`` (data, not migrations)."""
        data = load_plans()
        with Session(self.engine) as s, s.begin():
            for plan in data["plans"]:
                row = s.get(Plan, plan["id"]) or Plan(id=plan["id"])
                row.name = plan["name"]
                row.price_monthly_micros = to_micros(plan["price_monthly_usd"])
                row.monthly_cost_cap_micros = to_micros(plan["monthly_cost_cap_usd"])
                s.add(row)
                s.flush()
                for category, limit in plan["limits"].items():
                    lim = s.get(PlanLimit, (plan["id"], category)) or PlanLimit(
                        plan_id=plan["id"], category=category
                    )
                    lim.max_units = None if limit == "unlimited" else int(limit)
                    s.add(lim)

    def assign_plan(self, user_id: str, plan_id: str, *, anchor_day: int | None = None) -> None:
        with Session(self.engine) as s, s.begin():
            if s.get(Plan, plan_id) is None:
                raise ValueError(f"unknown plan {plan_id!r}")
            account = self._account(s, user_id)
            account.plan_id = plan_id
            if anchor_day is not None:
                if not 1 <= anchor_day <= 28:
                    raise ValueError("anchor_day must be between 1 and 28")
                account.period_anchor_day = anchor_day

    def set_monthly_cap(self, user_id: str, amount: Decimal | None) -> None:
        """A custom monthly budget for one user (None: back to the plan's cap)."""
        with Session(self.engine) as s, s.begin():
            account = self._account(s, user_id)
            account.cost_cap_override_micros = None if amount is None else to_micros(amount)

    def grant_credit(self, user_id: str, amount: Decimal) -> None:
        with Session(self.engine) as s, s.begin():
            account = self._account(s, user_id)
            account.credit_micros += to_micros(amount)

    def _account(self, s: Session, user_id: str) -> Account:
        _insert_ignore(
            s,
            Account,
            {
                "user_id": user_id,
                "plan_id": self.default_plan,
                "period_anchor_day": 1,
                "credit_micros": 0,
                "created_at": utcnow(),
            },
        )
        account = s.get(Account, user_id, populate_existing=True)
        assert account is not None
        return account

    # ------------------------------------------------------------------ reservations

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
                return _reservation_info(existing)
            account, plan, period = self._plan_period(s, user_id, now)
            self._hold(s, account, plan, period, {category: (units, amount)}, operation)
            row = _open_hold(
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
            return _reservation_info(row)

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
                return [_reservation_info(r) for r in existing]
            account, plan, period = self._plan_period(s, user_id, now)
            micros = {cat: (units, to_micros(amount)) for cat, (units, amount) in lines.items()}
            self._hold(s, account, plan, period, micros, "pipeline")
            rows = []
            for category, (units, amount) in sorted(micros.items()):
                row = _open_hold(
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
            return [_reservation_info(r) for r in rows]

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
            existing = s.scalar(select(Reservation).where(Reservation.operation_id == operation_id))
            if existing is not None:
                return _reservation_info(existing)
            parent_id = f"pipe:{pipeline_id}:{category}"
            table = Reservation.__table__.c
            moved = s.execute(
                update(Reservation)
                .where(
                    table.id == parent_id,
                    table.state == "held",
                    table.units >= units,
                    table.amount_micros >= amount,
                )
                .values(units=table.units - units, amount_micros=table.amount_micros - amount)
            ).rowcount
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
            row = _open_hold(
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
            return _reservation_info(row)

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
                self._close_hold(s, row, "release", reason, now)
        return from_micros(released)

    def record_cache_hit(
        self,
        *,
        user_id: str,
        operation_id: str,
        fingerprint: str,
        source: str,
        now: datetime | None = None,
    ) -> None:
        """A step served from stored outputs: nothing reserved or charged, but on the record."""
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            account = self._account(s, user_id)
            _insert_ignore(
                s,
                UsageEvent,
                {
                    "idempotency_key": f"cache_hit:{operation_id}",
                    "kind": "cache_hit",
                    "user_id": user_id,
                    "period": billing_period(now, account.period_anchor_day),
                    "operation_id": operation_id,
                    "category": None,
                    "units": 0,
                    "amount_micros": 0,
                    "model_id": None,
                    "prediction_id": None,
                    "note": f"reused outputs of {source} (fingerprint {fingerprint[:16]})",
                    "created_at": now,
                },
            )

    def _plan_period(self, s: Session, user_id: str, now: datetime) -> tuple[Account, Plan, str]:
        account = self._account(s, user_id)
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
        _insert_ignore(s, UsagePeriod, _zero_period(user_id, period))
        counter = UsageCounter.__table__.c
        for category, (units, _) in sorted(lines.items()):
            limit = s.get(PlanLimit, (plan.id, category))
            max_units = limit.max_units if limit is not None else 0
            _insert_ignore(s, UsageCounter, _zero_counter(user_id, period, category))
            room = update(UsageCounter).where(
                counter.user_id == user_id, counter.period == period, counter.category == category
            )
            if max_units is not None:
                room = room.where(counter.used_units + counter.reserved_units + units <= max_units)
            if s.execute(room.values(reserved_units=counter.reserved_units + units)).rowcount != 1:
                raise self._refusal(s, user_id, period, plan, category, units, max_units, operation)
        amount = sum(micros for _, micros in lines.values())
        cap = monthly_cap_micros(plan, account)
        money = UsagePeriod.__table__.c
        budget = (
            update(UsagePeriod)
            .where(money.user_id == user_id, money.period == period)
            .where(money.cost_used_micros + money.cost_reserved_micros + amount <= cap)
            .values(cost_reserved_micros=money.cost_reserved_micros + amount)
        )
        if s.execute(budget).rowcount != 1:
            raise self._cost_refusal(
                s, user_id, period, plan, cap, amount, operation, ",".join(sorted(lines))
            )

    def settle(
        self,
        *,
        operation_id: str,
        units_charged: int,
        delivered_predictions: Iterable[str] = (),
        delivered_blobs: Iterable[str] = (),
        now: datetime | None = None,
    ) -> SettlementInfo:
        """Charge the delivered units once, release the rest of the hold, and give the user
        their files (all in one transaction: paid for means readable)."""
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            row = _locked_reservation(s, operation_id)
            for sha in set(delivered_blobs):
                _insert_ignore(
                    s, BlobOwner, {"sha256": sha, "user_id": row.user_id, "created_at": now}
                )
            if row.state != "held":
                return SettlementInfo(
                    operation_id,
                    from_micros(row.charged_micros),
                    Decimal("0.00"),
                    already_settled=True,
                )
            units_charged = max(0, min(units_charged, row.units))
            charge = row.unit_price_micros * units_charged
            released = row.amount_micros - charge
            self._move_counters(s, row, used_units=units_charged, used_micros=charge)
            row.state = "settled"
            row.charged_micros = charge
            row.closed_at = now
            if units_charged:
                s.add(
                    _event(
                        f"charge:{operation_id}",
                        "charge",
                        row,
                        units=units_charged,
                        amount=charge,
                        now=now,
                    )
                )
            if row.units - units_charged:
                s.add(
                    _event(
                        f"release:{operation_id}",
                        "release",
                        row,
                        units=row.units - units_charged,
                        amount=released,
                        now=now,
                        note="undelivered variations",
                    )
                )
            for prediction_id in delivered_predictions:
                self._provider_cost(s, row, prediction_id, row.unit_price_micros, now)
            return SettlementInfo(operation_id, from_micros(charge), from_micros(released), False)

    def release(
        self, *, operation_id: str, reason: str, now: datetime | None = None
    ) -> SettlementInfo:
        """Give the whole hold back (failure or cancellation); a no-op once settled or released."""
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            row = s.scalar(select(Reservation).where(Reservation.operation_id == operation_id))
            if row is None:
                return SettlementInfo(operation_id, Decimal("0.00"), Decimal("0.00"), True)
            row = _locked_reservation(s, operation_id)
            if row.state != "held":
                return SettlementInfo(
                    operation_id, from_micros(row.charged_micros), Decimal("0.00"), True
                )
            self._close_hold(s, row, "release", reason, now)
            return SettlementInfo(
                operation_id, Decimal("0.00"), from_micros(row.amount_micros), False
            )

    def stale_reservations(
        self, *, now: datetime | None = None, limit: int = 500
    ) -> list[ReservationInfo]:
        """Holds past their expiry: candidates for ``expire`` once their workflow is gone."""
        now = now or utcnow()
        with Session(self.engine) as s:
            rows = s.scalars(
                select(Reservation)
                .where(Reservation.state == "held", Reservation.expires_at < now)
                .order_by(Reservation.expires_at)
                .limit(limit)
            )
            return [_reservation_info(r) for r in rows]

    def expire(self, *, operation_id: str, reason: str, now: datetime | None = None) -> bool:
        """Release a hold whose workflow vanished (terminated, reset, lost); idempotent."""
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            row = s.scalar(
                select(Reservation)
                .where(Reservation.operation_id == operation_id)
                .with_for_update()
            )
            if row is None or row.state != "held":
                return False
            self._close_hold(s, row, "expire", reason, now)
            return True

    def record_provider_cost(
        self,
        *,
        operation_id: str,
        prediction_id: str,
        amount: Decimal,
        note: str,
        now: datetime | None = None,
    ) -> bool:
        """Record what WaveSpeed billed for a prediction the user is not charged for."""
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            row = s.scalar(select(Reservation).where(Reservation.operation_id == operation_id))
            if row is None:
                return False
            return self._provider_cost(s, row, prediction_id, to_micros(amount), now, note=note)

    def _provider_cost(
        self,
        s: Session,
        row: Reservation,
        prediction_id: str,
        micros: int,
        now: datetime,
        note: str | None = None,
    ) -> bool:
        event = _event(
            f"provider_cost:{prediction_id}",
            "provider_cost",
            row,
            units=1,
            amount=micros,
            now=now,
            note=note,
        )
        event.prediction_id = prediction_id
        inserted = _insert_ignore(s, UsageEvent, _event_values(event))
        if inserted:
            money = UsagePeriod.__table__.c
            s.execute(
                update(UsagePeriod)
                .where(money.user_id == row.user_id, money.period == row.period)
                .values(provider_cost_micros=money.provider_cost_micros + micros)
            )
        return inserted

    def _close_hold(
        self, s: Session, row: Reservation, kind: str, reason: str, now: datetime
    ) -> None:
        """Give a whole hold back (``release`` or ``expire``) with its event."""
        self._move_counters(s, row, used_units=0, used_micros=0)
        row.state = "released" if kind == "release" else "expired"
        row.closed_at = now
        s.add(
            _event(
                f"{kind}:{row.operation_id}",
                kind,
                row,
                units=row.units,
                amount=row.amount_micros,
                now=now,
                note=reason[:500],
            )
        )

    def _move_counters(
        self, s: Session, row: Reservation, *, used_units: int, used_micros: int
    ) -> None:
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

    def _refusal(
        self,
        s: Session,
        user_id: str,
        period: str,
        plan: Plan,
        category: str,
        units: int,
        limit: int | None,
        operation: str,
    ) -> QuotaExceededError:
        counter = s.get(UsageCounter, (user_id, period, category), populate_existing=True)
        used = counter.used_units if counter else 0
        reserved = counter.reserved_units if counter else 0
        label, noun = CATEGORY_LABELS.get(category, (category, category))
        message = (
            f"{label} limit would be exceeded. Would use {used + reserved + units} of {limit} "
            f"{noun} this billing period."
        )
        return QuotaExceededError(
            {
                "error": f"{label} limit would be exceeded",
                "message": message,
                "provider": "wavespeed",
                "usage_info": {
                    "limit_type": "units",
                    "category": category,
                    "operation_type": operation,
                    "plan": plan.id,
                    "period": period,
                    "current": used,
                    "reserved": reserved,
                    "requested": units,
                    "limit": limit,
                },
            }
        )

    def _cost_refusal(
        self,
        s: Session,
        user_id: str,
        period: str,
        plan: Plan,
        cap: int,
        amount: int,
        operation: str,
        category: str,
    ) -> QuotaExceededError:
        money = s.get(UsagePeriod, (user_id, period), populate_existing=True)
        used = money.cost_used_micros if money else 0
        reserved = money.cost_reserved_micros if money else 0
        message = (
            f"Monthly cost limit would be exceeded. Would spend ${from_micros(used + reserved + amount)} "
            f"of ${from_micros(cap)} this billing period."
        )
        return QuotaExceededError(
            {
                "error": "Monthly cost limit would be exceeded",
                "message": message,
                "provider": "wavespeed",
                "usage_info": {
                    "limit_type": "cost",
                    "category": category,
                    "operation_type": operation,
                    "plan": plan.id,
                    "period": period,
                    "current_cost_usd": str(from_micros(used)),
                    "reserved_cost_usd": str(from_micros(reserved)),
                    "requested_cost_usd": str(from_micros(amount)),
                    "limit_usd": str(from_micros(cap)),
                },
            }
        )

    # ------------------------------------------------------------------ queries

    def reservation(self, operation_id: str) -> ReservationInfo | None:
        with Session(self.engine) as s:
            row = s.scalar(select(Reservation).where(Reservation.operation_id == operation_id))
            return _reservation_info(row) if row else None

    def usage(
        self, user_id: str, *, now: datetime | None = None, period: str | None = None
    ) -> UsageSummary:
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            account = self._account(s, user_id)
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
        with Session(self.engine) as s:
            query = select(UsageEvent).order_by(UsageEvent.id)
            if user_id:
                query = query.where(UsageEvent.user_id == user_id)
            if operation_id:
                query = query.where(UsageEvent.operation_id == operation_id)
            return list(s.scalars(query))

    def event_totals(self, user_id: str, period: str) -> dict[str, tuple[int, int]]:
        """Sum of (units, micros) per event kind: what the summaries must agree with."""
        with Session(self.engine) as s:
            rows = s.execute(
                select(
                    UsageEvent.kind, func.sum(UsageEvent.units), func.sum(UsageEvent.amount_micros)
                )
                .where(UsageEvent.user_id == user_id, UsageEvent.period == period)
                .group_by(UsageEvent.kind)
            )
            return {kind: (int(units or 0), int(micros or 0)) for kind, units, micros in rows}


# ---------------------------------------------------------------------- helpers


def load_plans(path: Path = PLANS_FILE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _insert_ignore(s: Session, model: type, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on either backend; True when a row was inserted.

    Whether the row went in is read from RETURNING, not from the rowcount, which PostgreSQL's
    driver reports as -1 for these statements.
    """
    table = model.__table__  # type: ignore[attr-defined]
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - other backends are not supported yet
        raise NotImplementedError(f"ledger backend {dialect} is not supported")
    return s.execute(stmt.returning(*table.primary_key.columns)).first() is not None


def _zero_period(user_id: str, period: str) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "period": period,
        "cost_used_micros": 0,
        "cost_reserved_micros": 0,
        "provider_cost_micros": 0,
    }


def _zero_counter(user_id: str, period: str, category: str) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "period": period,
        "category": category,
        "used_units": 0,
        "reserved_units": 0,
    }


def _locked_reservation(s: Session, operation_id: str) -> Reservation:
    row = s.scalar(
        select(Reservation).where(Reservation.operation_id == operation_id).with_for_update()
    )
    if row is None:
        raise LookupError(f"no reservation for operation {operation_id}")
    return row


def _open_hold(
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
        _event(
            f"{event}:{operation_id}", event, row, units=units, amount=amount, now=now, note=note
        )
    )
    return row


def _event(
    key: str,
    kind: str,
    row: Reservation,
    *,
    units: int,
    amount: int,
    now: datetime,
    note: str | None = None,
) -> UsageEvent:
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


def _event_values(event: UsageEvent) -> dict[str, Any]:
    return {c.key: getattr(event, c.key) for c in UsageEvent.__table__.columns if c.key != "id"}


def monthly_cap_micros(plan: Plan, account: Account) -> int:
    base = (
        account.cost_cap_override_micros
        if account.cost_cap_override_micros is not None
        else plan.monthly_cost_cap_micros
    )
    return base + account.credit_micros


def _reservation_info(row: Reservation) -> ReservationInfo:
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
