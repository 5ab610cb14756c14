"""Plans and accounts: the limits (data in ``plans.yaml``), who is on which plan, budgets, credit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger.book import LedgerBook
from ledger.rows import ensure_account
from ledger.schema import Plan, PlanLimit
from ledger.values import to_micros

PLANS_FILE = Path(__file__).with_name("plans.yaml")


def load_plans(path: Path = PLANS_FILE) -> dict[str, Any]:
    """The plans file: plans, their limits per category, and the default plan."""
    with path.open(encoding="utf-8") as fh:
        data: dict[str, Any] = yaml.safe_load(fh)
    return data


class PlanBook(LedgerBook):
    """Plans and accounts."""

    def sync_plans(self) -> None:
        """Upsert plans and limits from ``plans.yaml`` (data, not migrations).

        Safe when several workers start at once on a fresh database: a row another process
        inserted first is a unique violation here, and the next pass updates it instead.
        """
        for attempt in range(3):
            try:
                self._sync_plans()
                return
            except IntegrityError:
                if attempt == 2:
                    raise

    def _sync_plans(self) -> None:
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
        """Put a user on a plan (and optionally move the day their billing period starts)."""
        with Session(self.engine) as s, s.begin():
            if s.get(Plan, plan_id) is None:
                raise ValueError(f"unknown plan {plan_id!r}")
            account = ensure_account(s, user_id, self.default_plan)
            account.plan_id = plan_id
            if anchor_day is not None:
                if not 1 <= anchor_day <= 28:
                    raise ValueError("anchor_day must be between 1 and 28")
                account.period_anchor_day = anchor_day

    def set_monthly_cap(self, user_id: str, amount: Decimal | None) -> None:
        """A custom monthly budget for one user (None: back to the plan's cap)."""
        with Session(self.engine) as s, s.begin():
            account = ensure_account(s, user_id, self.default_plan)
            account.cost_cap_override_micros = None if amount is None else to_micros(amount)

    def grant_credit(self, user_id: str, amount: Decimal) -> None:
        """Raise a user's monthly money cap by ``amount`` (a top-up or goodwill credit)."""
        with Session(self.engine) as s, s.begin():
            account = ensure_account(s, user_id, self.default_plan)
            account.credit_micros += to_micros(amount)
