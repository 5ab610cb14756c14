"""Money in integer micro-dollars, billing periods, and the frozen answers the ledger gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

MICROS = Decimal(1_000_000)
RESERVATION_TTL = timedelta(hours=24)

CATEGORY_LABELS = {
    "images": ("Image generation", "images"),
    "edits": ("Image editing", "image edits"),
    "face_swaps": ("Face swap", "face swaps"),
    "models_3d": ("3D generation", "3D models"),
    "text": ("Text", "text operations"),
}


DEFAULT_PROVIDER = "wavespeed"
"""The provider a submission record names without a prefix (the only one before issue 14)."""


def submission_path(provider: str, model_path: str) -> str:
    """The ``model_path`` a submission record keeps: ``{provider}:{path}`` for every provider
    but WaveSpeed (whose bare paths predate the others), so the ledger knows who billed it."""
    return model_path if provider == DEFAULT_PROVIDER else f"{provider}:{model_path}"


def path_provider(recorded: str) -> str:
    """The provider of a submission record's ``model_path`` (see ``submission_path``)."""
    provider, sep, _ = recorded.partition(":")
    return provider if sep else DEFAULT_PROVIDER


def to_micros(amount: Decimal | str | int) -> int:
    """Dollars to integer micro-dollars (the ledger never stores floats)."""
    return int((Decimal(str(amount)) * MICROS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_micros(micros: int) -> Decimal:
    """Integer micro-dollars back to dollars with at least two decimals."""
    return (Decimal(micros) / MICROS).quantize(Decimal("0.000001")).normalize() + Decimal("0.00")


def utcnow() -> datetime:
    """Aware UTC now (every ledger timestamp)."""
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
    state: str = "settled"
    """The hold's state after the call: ``settled`` (charged), ``released`` or ``expired``; the
    transaction that moved it out of ``held`` decided, and the other path obeys it."""


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
