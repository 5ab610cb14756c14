"""Inputs and reports of the scheduled ledger maintenance (reconciliation, stale-hold expiry)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import Field

from contracts.operation import Frozen


class UnmatchedPrediction(Frozen):
    """A prediction the two sides disagree on: billed by the provider with no provider cost in
    the ledger (``side="provider"``), or cost in the ledger that the provider did not bill
    (``side="ledger"``)."""

    prediction_id: str
    side: str
    status: str = ""
    model: str = ""
    created_at: datetime | None = None
    amount_usd: Decimal | None = None
    """The ledger's recorded cost (``side="ledger"`` only)."""


class WindowFigures(Frozen):
    """What a reconciled window says: the balance spent against the ledger's provider cost,
    and why it was flagged, in words (shared by the report and each provider's entry)."""

    drift_usd: Decimal = Decimal("0")
    balance_spent_usd: Decimal = Decimal("0")
    ledger_cost_usd: Decimal = Decimal("0")
    flagged: bool = False
    summary: str = ""
    relative_drift: Decimal | None = None
    """``drift / balance spent`` of this window (None when nothing was spent)."""
    cumulative_drift_usd: Decimal = Decimal("0")
    cumulative_spent_usd: Decimal = Decimal("0")
    flags: list[str] = Field(default_factory=list)
    unmatched: list[UnmatchedPrediction] = Field(default_factory=list)
    unmatched_checked: bool = False
    """False when the provider's prediction list could not be read (see ``flags``)."""


class ProviderReconcile(WindowFigures):
    """One provider's window: its balance spent against its own provider costs in the ledger.

    A provider without a balance endpoint (Hugging Face, Gemini) is reported with its recorded
    costs over the same period and ``measurable=False``: its drift cannot be measured."""

    provider: str
    provider_url: str = ""
    measurable: bool = True
    """False when the provider has no balance to compare with (drift not measurable)."""
    balance_usd: Decimal | None = None
    """None when the provider has no balance endpoint or it could not be read."""
    reconciled: bool = False
    window_start: datetime | None = None
    window_end: datetime | None = None


class ReconcileReport(WindowFigures):
    """The provider's balance against what the ledger says we spent; ``flagged`` when they drift
    apart in one window (absolute or relative), cumulatively, or on a prediction neither side
    can match. ``flags`` says which, in words.

    The top-level figures are WaveSpeed's (as before other providers existed); ``providers``
    has one entry per configured provider, WaveSpeed first, and ``flagged`` is set when any of
    them is flagged."""

    balance_usd: Decimal
    reconciled: bool
    providers: list[ProviderReconcile] = Field(default_factory=list)
    """Each provider's own window (empty in reports from before per-provider reconciliation)."""


class ExpiryReport(Frozen):
    """How many stale holds were examined and which operations' holds were released."""

    examined: int
    expired: list[str] = Field(default_factory=list)


class MaintenanceRequest(Frozen):
    """Input of one ``LedgerMaintenance`` run: how much drift is tolerated before flagging.

    A window is flagged above ``drift_threshold_usd``, or above ``drift_threshold_ratio`` of its
    spend once the drift reaches ``drift_floor_usd`` (a small steady leak, not only a large one);
    the running total across windows above ``cumulative_threshold_usd``."""

    drift_threshold_usd: Decimal = Decimal("0.50")
    drift_threshold_ratio: Decimal = Decimal("0.01")
    drift_floor_usd: Decimal = Decimal("0.01")
    cumulative_threshold_usd: Decimal = Decimal("0.50")
    match_grace_seconds: float = 300.0
    """Predictions created this recently are not yet expected to have their cost recorded."""
    reset_cumulative: bool = False
    """Start the running total afresh with this window (after a top-up or an explained drift)."""


class MaintenanceReport(Frozen):
    """Result of one ``LedgerMaintenance`` run: reconciliation and hold expiry."""

    reconcile: ReconcileReport
    expiry: ExpiryReport


class AbandonedRequest(Frozen):
    """Input of an ``AbandonedPredictions`` follow-up: account for every prediction a run that
    ended without charging them left at the provider (WaveSpeed cannot cancel one)."""

    operation_id: str
    model_id: str
    poll_seconds: float = 2.0
    """First pause between sweeps; it grows up to ``max_poll_seconds``."""
    max_poll_seconds: float = 30.0
    max_wait_seconds: float = 3600.0
    """Give up after this long; what is still unresolved is left to reconciliation."""
    quiet_seconds: float = 0.0
    """Sweep for at least this long: a submit attempt the cancel did not stop may still be
    writing its intent (the run's submit attempt timeout)."""


class AbandonedSweep(Frozen):
    """One look at an operation's submissions: what is accounted for, what is still open."""

    billed: list[str] = Field(default_factory=list)
    """Predictions that ended billed by the provider: their cost is in the ledger."""
    not_billed: list[str] = Field(default_factory=list)
    """Predictions that ended without a bill (failed, where failures are free)."""
    nothing_created: list[str] = Field(default_factory=list)
    """Submissions whose POST provably created nothing."""
    pending: list[str] = Field(default_factory=list)
    """Predictions still running, or unanswered POSTs not yet resolved (submission ids)."""
    cost_usd: Decimal = Decimal("0")
    """Provider cost of ``billed``."""
