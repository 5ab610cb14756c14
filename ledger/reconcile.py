"""Do our books agree with what the provider billed? Compare balance changes with provider cost.

Between two balance snapshots the provider account spent ``start - end``; the ledger recorded
``provider_cost`` events for the predictions it knows about. The difference is drift: positive
when the provider billed more than we can account for (an orphaned prediction, a duplicate, a
price change), negative when it billed less (a refund, a top-up).

A window is flagged when its drift is large in dollars, or large against the window's spend (a
3% leak of a $0.90 window is only $0.03), and the running total across windows is flagged when a
leak too small for any one window adds up. Windows are contiguous (each starts where the last
reconciled one ended), so a prediction finishing at a boundary moves a few cents between two
windows but never leaves the running total. The provider's prediction list, when given, names
the predictions behind a drift: billed ones without a provider cost in the ledger, and provider
costs in the ledger the provider did not bill.

Each provider account is reconciled on its own: a window of a provider's balance is compared with
that provider's ``provider_cost`` events only (``usage_events.provider``, which the ledger reads
from the prediction's submission record), so a Stability job never moves WaveSpeed's drift.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, or_, select
from sqlalchemy.orm import Session

from contracts.maintenance import (
    MaintenanceRequest,
    ProviderReconcile,
    ReconcileReport,
    UnmatchedPrediction,
)
from ledger.db import reading
from ledger.schema import BalanceSnapshot, Reconciliation, UsageEvent
from ledger.values import DEFAULT_PROVIDER, from_micros, to_micros, utcnow

LISTING_LOOKBACK = timedelta(hours=1)
"""How far before a window the provider's list must reach: a cost recorded in the window may
belong to a prediction created earlier (a long wait, an abandoned prediction's follow-up)."""


@dataclass(frozen=True)
class DriftLimits:
    """When drift deserves a person's look (see ``MaintenanceRequest``)."""

    absolute: Decimal = Decimal("0.50")
    ratio: Decimal = Decimal("0.01")
    floor: Decimal = Decimal("0.01")
    cumulative: Decimal = Decimal("0.50")

    @classmethod
    def of(cls, request: MaintenanceRequest) -> DriftLimits:
        return cls(
            absolute=request.drift_threshold_usd,
            ratio=request.drift_threshold_ratio,
            floor=request.drift_floor_usd,
            cumulative=request.cumulative_threshold_usd,
        )

    def flags(self, drift: int, spent: int, cumulative: int, cumulative_spent: int) -> list[str]:
        """Reasons (in words) this window's figures, in micro-USD, cross a limit."""
        found = []
        if abs(drift) > to_micros(self.absolute):
            found.append(f"drift ${from_micros(drift)} exceeds ${self.absolute}")
        if spent > 0 and abs(drift) >= to_micros(self.floor) and abs(drift) > self.ratio * spent:
            share = Decimal(drift) / Decimal(spent) * 100
            found.append(
                f"drift {share:.1f}% of ${from_micros(spent)} spent exceeds {self.ratio * 100:.1f}%"
            )
        if abs(cumulative) > to_micros(self.cumulative):
            found.append(
                f"cumulative drift ${from_micros(cumulative)} (on ${from_micros(cumulative_spent)} "
                f"spent) exceeds ${self.cumulative}"
            )
        return found


@dataclass(frozen=True)
class ListedPrediction:
    """One entry of the provider's prediction list, as much as matching needs."""

    id: str
    status: str
    model: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class Window:
    """Two balance snapshots of one provider account: what was spent between them."""

    provider_url: str
    start: datetime
    end: datetime
    spent_micros: int
    provider: str = DEFAULT_PROVIDER

    def listing_range(self) -> tuple[datetime, datetime]:
        """Creation times the provider's list must cover to match this window."""
        return self.start - LISTING_LOOKBACK, self.end


@dataclass(frozen=True)
class ReconciliationInfo:
    window_start: datetime
    window_end: datetime
    balance_spent: Decimal
    ledger_cost: Decimal
    drift: Decimal
    flagged: bool
    cumulative_drift: Decimal = Decimal("0")
    cumulative_spent: Decimal = Decimal("0")
    flags: tuple[str, ...] = ()
    unmatched: tuple[UnmatchedPrediction, ...] | None = field(default=None)
    """None when the provider's list was not read (matching not checked)."""
    provider: str = DEFAULT_PROVIDER

    @property
    def relative(self) -> Decimal | None:
        return self.drift / self.balance_spent if self.balance_spent > 0 else None

    def describe(self) -> str:
        verdict = "FLAGGED" if self.flagged else "ok"
        share = f" ({self.relative * 100:.1f}%)" if self.relative is not None else ""
        text = (
            f"{verdict}: provider balance spent ${self.balance_spent}, ledger provider cost "
            f"${self.ledger_cost}, drift ${self.drift}{share}, cumulative ${self.cumulative_drift} "
            f"({self.window_start:%Y-%m-%d %H:%M:%S} → {self.window_end:%H:%M:%S} UTC)"
        )
        return "; ".join([text, *self.flags])

    def report(self, balance: Decimal) -> ReconcileReport:
        """The activity's answer for this window at the given balance."""
        return ReconcileReport(balance_usd=balance, **self._figures())

    def provider_report(self, balance: Decimal, provider_url: str = "") -> ProviderReconcile:
        """This window as one provider's entry of the activity's answer."""
        return ProviderReconcile(
            provider=self.provider,
            provider_url=provider_url,
            balance_usd=balance,
            window_start=self.window_start,
            window_end=self.window_end,
            **self._figures(),
        )

    def _figures(self) -> dict[str, Any]:
        """What both answers say about a reconciled window."""
        return {
            "reconciled": True,
            "drift_usd": self.drift,
            "balance_spent_usd": self.balance_spent,
            "ledger_cost_usd": self.ledger_cost,
            "flagged": self.flagged,
            "summary": self.describe(),
            "relative_drift": self.relative,
            "cumulative_drift_usd": self.cumulative_drift,
            "cumulative_spent_usd": self.cumulative_spent,
            "flags": list(self.flags),
            "unmatched": list(self.unmatched or ()),
            "unmatched_checked": self.unmatched is not None,
        }


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

    def window(self, provider_url: str, provider: str = DEFAULT_PROVIDER) -> Window | None:
        """From where the last reconciled window ended (else the previous snapshot) to the latest
        snapshot; None while there is nothing new to compare. ``provider`` names the account
        behind ``provider_url``: only its provider costs count against the window."""
        with Session(reading(self.engine)) as s:
            snaps = select(BalanceSnapshot).where(BalanceSnapshot.provider_url == provider_url)
            newest = snaps.order_by(BalanceSnapshot.taken_at.desc(), BalanceSnapshot.id.desc())
            end = s.scalars(newest.limit(1)).first()
            last = _last_reconciliation(s, provider_url)
            start = None
            if last is not None:
                start = s.scalars(
                    newest.where(BalanceSnapshot.taken_at == last.window_end).limit(1)
                ).first()
            if start is None:
                start = s.scalars(newest.offset(1).limit(1)).first()
            if end is None or start is None or end.taken_at <= start.taken_at:
                return None
            spent = start.balance_micros - end.balance_micros
            return Window(
                provider_url, _aware(start.taken_at), _aware(end.taken_at), spent, provider
            )

    def reconcile(
        self,
        window: Window,
        limits: DriftLimits,
        *,
        listed: Sequence[ListedPrediction] | None = None,
        grace: timedelta = timedelta(minutes=5),
        bills_failed: bool = False,
        reset_cumulative: bool = False,
        listing_problem: str = "",
    ) -> ReconciliationInfo:
        """Compare, flag, match and record one window (one transaction)."""
        with Session(self.engine) as s, s.begin():
            in_window = _costs_of(window.provider, window.start, window.end)
            cost = _sum(s, in_window)
            drift = window.spent_micros - cost
            last = None if reset_cumulative else _last_reconciliation(s, window.provider_url)
            cumulative = drift + (last.cumulative_drift_micros if last else 0)
            cumulative_spent = window.spent_micros + (last.cumulative_spent_micros if last else 0)
            flags = limits.flags(drift, window.spent_micros, cumulative, cumulative_spent)
            unmatched = None
            if listing_problem:
                flags.append(listing_problem)
            if listed is not None:
                billed = {"completed", "failed"} if bills_failed else {"completed"}
                unmatched = _unmatched(s, window, listed, billed, grace, in_window)
                if unmatched:
                    shown = ", ".join(u.prediction_id for u in unmatched[:5])
                    more = f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else ""
                    flags.append(f"{len(unmatched)} prediction(s) unmatched: {shown}{more}")
            s.add(
                Reconciliation(
                    provider_url=window.provider_url,
                    provider=window.provider,
                    window_start=window.start,
                    window_end=window.end,
                    balance_spent_micros=window.spent_micros,
                    ledger_cost_micros=cost,
                    drift_micros=drift,
                    flagged=int(bool(flags)),
                    created_at=utcnow(),
                    cumulative_drift_micros=cumulative,
                    cumulative_spent_micros=cumulative_spent,
                    flags="\n".join(flags) or None,
                    unmatched_json=_dump(unmatched),
                )
            )
            return ReconciliationInfo(
                window.start,
                window.end,
                from_micros(window.spent_micros),
                from_micros(cost),
                from_micros(drift),
                bool(flags),
                from_micros(cumulative),
                from_micros(cumulative_spent),
                tuple(flags),
                None if unmatched is None else tuple(unmatched),
                window.provider,
            )

    def recorded_cost(self, provider: str, start: datetime, end: datetime) -> Decimal:
        """The provider costs recorded for ``provider`` in ``(start, end]`` (a provider without
        a balance: what it should have billed, with nothing to compare it to)."""
        with Session(reading(self.engine)) as s:
            return from_micros(_sum(s, _costs_of(provider, start, end)))

    def reconcile_latest(
        self,
        provider_url: str,
        *,
        limits: DriftLimits | None = None,
        provider: str = DEFAULT_PROVIDER,
        **options: object,
    ) -> ReconciliationInfo | None:
        """Reconcile the newest window (None while only one snapshot exists)."""
        window = self.window(provider_url, provider)
        if window is None:
            return None
        return self.reconcile(window, limits or DriftLimits(), **options)  # type: ignore[arg-type]

    def history(self, limit: int = 20) -> list[ReconciliationInfo]:
        with Session(reading(self.engine)) as s:
            rows = s.scalars(select(Reconciliation).order_by(Reconciliation.id.desc()).limit(limit))
            return [_info(r) for r in rows]


def _costs_of(provider: str, start: datetime, end: datetime) -> tuple[ColumnElement[bool], ...]:
    """The provider costs of ``provider`` recorded in ``(start, end]``; WaveSpeed's include
    those written without a provider (by a worker older than revision 0007)."""
    mine = UsageEvent.provider == provider
    if provider == DEFAULT_PROVIDER:
        mine = or_(mine, UsageEvent.provider.is_(None))
    return (
        UsageEvent.kind == "provider_cost",
        mine,
        UsageEvent.created_at > start,
        UsageEvent.created_at <= end,
    )


def _sum(s: Session, where: tuple[ColumnElement[bool], ...]) -> int:
    total = s.scalar(select(func.coalesce(func.sum(UsageEvent.amount_micros), 0)).where(*where))
    return int(total or 0)


def _last_reconciliation(s: Session, provider_url: str) -> Reconciliation | None:
    return s.scalars(
        select(Reconciliation)
        .where(Reconciliation.provider_url == provider_url)
        .order_by(Reconciliation.window_end.desc(), Reconciliation.id.desc())
        .limit(1)
    ).first()


def _unmatched(
    s: Session,
    window: Window,
    listed: Sequence[ListedPrediction],
    billed_statuses: set[str],
    grace: timedelta,
    in_window: tuple[ColumnElement[bool], ...],
) -> list[UnmatchedPrediction]:
    """Billed predictions (created in the window, shifted back by ``grace``) with no provider cost
    in the ledger, then provider costs of the window the provider's list does not show billed."""
    billed = {p.id: p for p in listed if p.status in billed_statuses}
    due = [
        p
        for p in billed.values()
        if p.created_at is None or window.start - grace < p.created_at <= window.end - grace
    ]
    known = _costed(s, [p.id for p in due])
    found = [
        UnmatchedPrediction(
            prediction_id=p.id,
            side="provider",
            status=p.status,
            model=p.model,
            created_at=p.created_at,
        )
        for p in due
        if p.id not in known
    ]
    statuses = {p.id: p.status for p in listed}
    events = s.execute(
        select(UsageEvent.prediction_id, UsageEvent.model_id, UsageEvent.amount_micros).where(
            *in_window, UsageEvent.prediction_id.is_not(None)
        )
    )
    for prediction_id, model_id, amount in events:
        if prediction_id and prediction_id not in billed:
            found.append(
                UnmatchedPrediction(
                    prediction_id=prediction_id,
                    side="ledger",
                    status=statuses.get(prediction_id, "not listed"),
                    model=model_id or "",
                    amount_usd=from_micros(amount),
                )
            )
    return found


def _costed(s: Session, prediction_ids: Iterable[str]) -> set[str]:
    """Which of these predictions have a provider cost in the ledger (any time)."""
    ids, found = list(prediction_ids), set[str | None]()
    for i in range(0, len(ids), 500):
        found.update(
            s.scalars(
                select(UsageEvent.prediction_id).where(
                    UsageEvent.kind == "provider_cost",
                    UsageEvent.prediction_id.in_(ids[i : i + 500]),
                )
            )
        )
    return {p for p in found if p}


def _aware(when: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; every one the ledger writes is UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _dump(unmatched: list[UnmatchedPrediction] | None) -> str | None:
    if unmatched is None:
        return None
    return json.dumps([u.model_dump(mode="json") for u in unmatched])


def _info(r: Reconciliation) -> ReconciliationInfo:
    unmatched = None
    if r.unmatched_json is not None:
        unmatched = tuple(
            UnmatchedPrediction.model_validate(u) for u in json.loads(r.unmatched_json)
        )
    return ReconciliationInfo(
        r.window_start,
        r.window_end,
        from_micros(r.balance_spent_micros),
        from_micros(r.ledger_cost_micros),
        from_micros(r.drift_micros),
        bool(r.flagged),
        from_micros(r.cumulative_drift_micros),
        from_micros(r.cumulative_spent_micros),
        tuple((r.flags or "").splitlines()),
        unmatched,
        r.provider or DEFAULT_PROVIDER,
    )
