"""The ledger: the only code that writes usage, in four parts (plans, holds, charges, reports).

Every write is one short transaction made of conditional ``UPDATE``s (``... WHERE used + reserved
+ n <= limit``), so concurrent requests can never overshoot a limit, and every event carries an
idempotency key, so a retried or replayed activity never counts twice. The counters that
pre-flight checks are the rows settlement moves.
"""

from __future__ import annotations

from sqlalchemy import Engine

from ledger.accounts import PlanBook, load_plans
from ledger.charges import ChargeBook
from ledger.db import shared_engine
from ledger.holds import HoldBook
from ledger.reports import ReportBook
from ledger.values import (
    CounterInfo,
    ReservationInfo,
    SettlementInfo,
    UsageSummary,
    billing_period,
    from_micros,
    to_micros,
    utcnow,
)


class Ledger(PlanBook, HoldBook, ChargeBook, ReportBook):
    """Plans and accounts, holds, charges and reports over one database."""

    def __init__(self, engine: Engine, *, default_plan: str | None = None) -> None:
        self.engine = engine
        self.default_plan = default_plan or load_plans()["default_plan"]


def open_ledger(url: str, *, auto_migrate: bool) -> Ledger:
    """The ledger at ``url`` (schema checked, plans synced), for the API and the CLI."""
    ledger = Ledger(shared_engine(url, auto_migrate))
    ledger.sync_plans()
    return ledger


__all__ = [
    "CounterInfo",
    "Ledger",
    "ReservationInfo",
    "SettlementInfo",
    "UsageSummary",
    "billing_period",
    "from_micros",
    "open_ledger",
    "to_micros",
    "utcnow",
]
