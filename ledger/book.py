"""What every part of the ledger shares: its engine and the plan new accounts start on."""

from __future__ import annotations

from sqlalchemy import Engine


class LedgerBook:
    """Base of the ledger's parts (plans, holds, charges, reports); ``Ledger`` combines them."""

    engine: Engine
    default_plan: str
