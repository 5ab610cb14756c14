"""Prove the books: every counter equals the sum of the events that moved it.

``studio ledger check`` runs this; a non-empty result means a write bypassed the event log (or
the log lost an event), which would make usage shown to users untrustworthy.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ledger.db import reading
from ledger.schema import UsageCounter, UsageEvent, UsagePeriod

# How each event kind moves (reserved, used): draws move holds between reservations only,
# cache hits and provider costs never touch the user's counters.
MOVES = {
    "reserve": (1, 0),
    "charge": (-1, 1),
    "release": (-1, 0),
    "expire": (-1, 0),
    "refund": (0, -1),
}


@dataclass(frozen=True)
class Discrepancy:
    user_id: str
    period: str
    what: str
    counter: int
    events: int

    def __str__(self) -> str:
        return f"{self.user_id} {self.period} {self.what}: counter {self.counter} != events {self.events}"


def verify(
    engine: Engine, *, user_id: str | None = None, period: str | None = None
) -> list[Discrepancy]:
    units: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    money: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    with Session(reading(engine)) as s:
        query = select(
            UsageEvent.user_id,
            UsageEvent.period,
            UsageEvent.category,
            UsageEvent.kind,
            func.sum(UsageEvent.units),
            func.sum(UsageEvent.amount_micros),
        ).group_by(UsageEvent.user_id, UsageEvent.period, UsageEvent.category, UsageEvent.kind)
        if user_id:
            query = query.where(UsageEvent.user_id == user_id)
        if period:
            query = query.where(UsageEvent.period == period)
        for user, per, category, kind, n, micros in s.execute(query):
            n, micros = int(n or 0), int(micros or 0)
            if kind == "provider_cost":
                money[(user, per)][2] += micros
                continue
            if kind not in MOVES:
                continue
            reserved_sign, used_sign = MOVES[kind]
            money[(user, per)][0] += reserved_sign * micros
            money[(user, per)][1] += used_sign * micros
            for cat in (category or "").split(","):
                if cat:
                    units[(user, per, cat)][0] += reserved_sign * n
                    units[(user, per, cat)][1] += used_sign * n

        problems: list[Discrepancy] = []
        counters = select(UsageCounter)
        periods = select(UsagePeriod)
        if user_id:
            counters = counters.where(UsageCounter.user_id == user_id)
            periods = periods.where(UsagePeriod.user_id == user_id)
        if period:
            counters = counters.where(UsageCounter.period == period)
            periods = periods.where(UsagePeriod.period == period)
        for c in s.scalars(counters):
            reserved, used = units.pop((c.user_id, c.period, c.category), [0, 0])
            if c.reserved_units != reserved:
                problems.append(
                    Discrepancy(
                        c.user_id,
                        c.period,
                        f"{c.category} reserved units",
                        c.reserved_units,
                        reserved,
                    )
                )
            if c.used_units != used:
                problems.append(
                    Discrepancy(c.user_id, c.period, f"{c.category} used units", c.used_units, used)
                )
        for p in s.scalars(periods):
            reserved, used, provider = money.pop((p.user_id, p.period), [0, 0, 0])
            for what, counter, events in (
                ("reserved micro-USD", p.cost_reserved_micros, reserved),
                ("used micro-USD", p.cost_used_micros, used),
                ("provider cost micro-USD", p.provider_cost_micros, provider),
            ):
                if counter != events:
                    problems.append(Discrepancy(p.user_id, p.period, what, counter, events))
        for (user, per, cat), (reserved, used) in units.items():
            if reserved or used:
                problems.append(
                    Discrepancy(user, per, f"{cat} units without a counter row", 0, reserved + used)
                )
    return problems
