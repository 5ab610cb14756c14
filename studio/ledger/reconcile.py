"""Do our books agree with what the provider billed? Compare balance changes with provider cost.

Between two balance snapshots the provider account spent ``start - end``; the ledger recorded
``provider_cost`` events for the predictions it knows about. The difference is drift: positive
when the provider billed more than we can account for (an orphaned prediction, a duplicate, a
price change), negative when it billed less (a refund, a top-up). Predictions finishing right at
a window boundary can move a few cents between adjacent windows; the threshold absorbs that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from studio.ledger.schema import BalanceSnapshot, Reconciliation, UsageEvent
from studio.ledger.service import from_micros, to_micros, utcnow


@dataclass(frozen=True)
class ReconciliationInfo:
    window_start: datetime
    window_end: datetime
    balance_spent: Decimal
    ledger_cost: Decimal
    drift: Decimal
    flagged: bool

    def describe(self) -> str:
        verdict = "FLAGGED" if self.flagged else "ok"
        return (
            f"{verdict}: provider balance spent ${self.balance_spent}, ledger provider cost ${self.ledger_cost}, "
            f"drift ${self.drift} ({self.window_start:%Y-%m-%d %H:%M:%S} → {self.window_end:%H:%M:%S} UTC)"
        )


class Reconciler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def snapshot(self, provider_url: str, balance: Decimal, *, at: datetime | None = None) -> None:
        with Session(self.engine) as s, s.begin():
            s.add(
                BalanceSnapshot(
                    provider_url=provider_url,
                    balance_micros=to_micros(balance),
                    taken_at=at or utcnow(),
                )
            )

    def reconcile_latest(
        self, provider_url: str, *, threshold: Decimal
    ) -> ReconciliationInfo | None:
        """Compare the two latest snapshots; record and return the result (None if only one)."""
        with Session(self.engine) as s, s.begin():
            latest = list(
                s.scalars(
                    select(BalanceSnapshot)
                    .where(BalanceSnapshot.provider_url == provider_url)
                    .order_by(BalanceSnapshot.taken_at.desc(), BalanceSnapshot.id.desc())
                    .limit(2)
                )
            )
            if len(latest) < 2:
                return None
            end, start = latest
            cost = s.scalar(
                select(func.coalesce(func.sum(UsageEvent.amount_micros), 0)).where(
                    UsageEvent.kind == "provider_cost",
                    UsageEvent.created_at > start.taken_at,
                    UsageEvent.created_at <= end.taken_at,
                )
            )
            spent = start.balance_micros - end.balance_micros
            drift = spent - int(cost or 0)
            flagged = abs(drift) > to_micros(threshold)
            s.add(
                Reconciliation(
                    provider_url=provider_url,
                    window_start=start.taken_at,
                    window_end=end.taken_at,
                    balance_spent_micros=spent,
                    ledger_cost_micros=int(cost or 0),
                    drift_micros=drift,
                    flagged=int(flagged),
                    created_at=utcnow(),
                )
            )
            return ReconciliationInfo(
                start.taken_at,
                end.taken_at,
                from_micros(spent),
                from_micros(int(cost or 0)),
                from_micros(drift),
                flagged,
            )

    def history(self, limit: int = 20) -> list[ReconciliationInfo]:
        with Session(self.engine) as s:
            rows = s.scalars(select(Reconciliation).order_by(Reconciliation.id.desc()).limit(limit))
            return [
                ReconciliationInfo(
                    r.window_start,
                    r.window_end,
                    from_micros(r.balance_spent_micros),
                    from_micros(r.ledger_cost_micros),
                    from_micros(r.drift_micros),
                    bool(r.flagged),
                )
                for r in rows
            ]
