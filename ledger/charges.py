"""Charges: settle what was delivered once, give holds back, expire orphans, record provider cost.

Every event carries an idempotency key, so a retried or replayed activity never counts twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.book import LedgerBook
from ledger.rows import (
    close_hold,
    ensure_account,
    insert_ignore,
    locked_reservation,
    move_counters,
    provider_cost,
    usage_event,
)
from ledger.schema import BlobOwner, Reservation, UsageEvent
from ledger.values import SettlementInfo, billing_period, from_micros, to_micros, utcnow


class ChargeBook(LedgerBook):
    """Settlement and release: the only places money moves after pre-flight."""

    def settle(
        self,
        *,
        operation_id: str,
        units_charged: int,
        delivered_predictions: Iterable[str] = (),
        delivered_blobs: Iterable[str] = (),
        amount: Decimal | None = None,
        delivered_prices: Mapping[str, Decimal] | None = None,
        now: datetime | None = None,
    ) -> SettlementInfo:
        """Charge the delivered units once, release the rest of the hold, and give the user
        their files (all in one transaction: paid for means readable).

        ``amount`` (routed runs) charges what the delivering providers' prices add up to, never
        more than the held price of the delivered units; ``delivered_prices`` is the provider
        cost per delivered prediction (default: the held unit price).

        The hold row is locked first and its state decides: a hold a cancel already released is
        not charged and grants nothing (``state="released"``); a settled one is a replay.
        """
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            row = locked_reservation(s, operation_id)
            if row.state in ("held", "settled"):
                for sha in set(delivered_blobs):
                    insert_ignore(
                        s, BlobOwner, {"sha256": sha, "user_id": row.user_id, "created_at": now}
                    )
            if row.state != "held":
                return SettlementInfo(
                    operation_id,
                    from_micros(row.charged_micros),
                    Decimal("0.00"),
                    already_settled=True,
                    state=row.state,
                )
            units_charged = max(0, min(units_charged, row.units))
            charge = row.unit_price_micros * units_charged
            if amount is not None:
                charge = min(charge, to_micros(amount))
            released = row.amount_micros - charge
            move_counters(s, row, used_units=units_charged, used_micros=charge)
            row.state = "settled"
            row.charged_micros = charge
            row.closed_at = now
            if units_charged:
                s.add(
                    usage_event(
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
                    usage_event(
                        f"release:{operation_id}",
                        "release",
                        row,
                        units=row.units - units_charged,
                        amount=released,
                        now=now,
                        note="undelivered variations",
                    )
                )
            prices = delivered_prices or {}
            for prediction_id in delivered_predictions:
                cost = to_micros(prices[prediction_id]) if prediction_id in prices else None
                provider_cost(s, row, prediction_id, cost or row.unit_price_micros, now)
            return SettlementInfo(operation_id, from_micros(charge), from_micros(released), False)

    def release(
        self, *, operation_id: str, reason: str, now: datetime | None = None
    ) -> SettlementInfo:
        """Give the whole hold back (failure or cancellation); a no-op once settled or released.

        ``state`` tells the caller who won a race with settlement: ``settled`` means the charge
        committed first, so the run must complete with its result rather than end cancelled.
        """
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            row = s.scalar(select(Reservation).where(Reservation.operation_id == operation_id))
            if row is None:
                return SettlementInfo(
                    operation_id, Decimal("0.00"), Decimal("0.00"), True, state="released"
                )
            row = locked_reservation(s, operation_id)
            if row.state != "held":
                return SettlementInfo(
                    operation_id,
                    from_micros(row.charged_micros),
                    Decimal("0.00"),
                    True,
                    state=row.state,
                )
            close_hold(s, row, "release", reason, now)
            return SettlementInfo(
                operation_id,
                Decimal("0.00"),
                from_micros(row.amount_micros),
                False,
                state="released",
            )

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
            close_hold(s, row, "expire", reason, now)
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
        """Record what a provider billed for a prediction the user is not charged for (the
        provider is read from the prediction's submission record)."""
        now = now or utcnow()
        with Session(self.engine) as s, s.begin():
            row = s.scalar(select(Reservation).where(Reservation.operation_id == operation_id))
            if row is None:
                return False
            return provider_cost(s, row, prediction_id, to_micros(amount), now, note=note)

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
            account = ensure_account(s, user_id, self.default_plan)
            insert_ignore(
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
