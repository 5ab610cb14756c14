"""Refusals in the seed system's 429 shape (``error``, ``message``, ``provider``, ``usage_info``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from contracts.errors import QuotaExceededError
from ledger.schema import Plan, UsageCounter, UsagePeriod
from ledger.values import CATEGORY_LABELS, from_micros


def unit_refusal(
    s: Session,
    user_id: str,
    period: str,
    plan: Plan,
    category: str,
    units: int,
    limit: int | None,
    operation: str,
) -> QuotaExceededError:
    """A unit limit of the plan would be exceeded."""
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


def cost_refusal(
    s: Session,
    user_id: str,
    period: str,
    plan: Plan,
    cap: int,
    amount: int,
    operation: str,
    category: str,
) -> QuotaExceededError:
    """The monthly money cap would be exceeded."""
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
