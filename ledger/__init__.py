"""The usage ledger: plans, holds, charges, the append-only event log, and the records that
outlive Temporal (SQLAlchemy 2.0 + Alembic; SQLite embedded, PostgreSQL in production).

``Ledger`` (``ledger.service``) combines the parts: plans and accounts (``ledger.accounts``),
holds (``ledger.holds``), charges (``ledger.charges``) and reports (``ledger.reports``). The books
check is ``ledger.audit.verify``; reconciliation with a provider's balance is ``ledger.reconcile``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.audit import verify
    from ledger.blob_owners import BlobOwners
    from ledger.db import LedgerNotMigratedError, create_ledger_engine, shared_engine
    from ledger.reconcile import Reconciler
    from ledger.service import Ledger, open_ledger
    from ledger.step_cache import StepCache
    from ledger.submissions import SubmissionBook, UploadCache
    from ledger.values import ReservationInfo, SettlementInfo, UsageSummary

__all__ = [
    "BlobOwners",
    "Ledger",
    "LedgerNotMigratedError",
    "Reconciler",
    "ReservationInfo",
    "SettlementInfo",
    "StepCache",
    "SubmissionBook",
    "UploadCache",
    "UsageSummary",
    "create_ledger_engine",
    "open_ledger",
    "shared_engine",
    "verify",
]

_HOME = {
    "verify": "ledger.audit",
    "BlobOwners": "ledger.blob_owners",
    "LedgerNotMigratedError": "ledger.db",
    "create_ledger_engine": "ledger.db",
    "shared_engine": "ledger.db",
    "Reconciler": "ledger.reconcile",
    "Ledger": "ledger.service",
    "open_ledger": "ledger.service",
    "StepCache": "ledger.step_cache",
    "SubmissionBook": "ledger.submissions",
    "UploadCache": "ledger.submissions",
    "ReservationInfo": "ledger.values",
    "SettlementInfo": "ledger.values",
    "UsageSummary": "ledger.values",
}


def __getattr__(name: str) -> Any:
    """Import on first use, so ``import ledger.schema`` stays light."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(name)
