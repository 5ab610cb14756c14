"""Ledger housekeeping run on a schedule: reconcile with the provider's balance, expire holds
whose workflow vanished."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from pydantic import Field
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.failures import from_provider_error
from activities.resources import StudioResources
from providers.wavespeed.errors import WaveSpeedError
from studio.contracts import Frozen
from studio.ledger.reconcile import Reconciler


class ReconcileReport(Frozen):
    balance_usd: Decimal
    reconciled: bool
    drift_usd: Decimal = Decimal("0")
    balance_spent_usd: Decimal = Decimal("0")
    ledger_cost_usd: Decimal = Decimal("0")
    flagged: bool = False
    summary: str = ""


class ExpiryReport(Frozen):
    examined: int
    expired: list[str] = Field(default_factory=list)


class MaintenanceActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources
        self._reconciler = Reconciler(resources.ledger.engine)

    @activity.defn(name="reconcile_balance")
    async def reconcile_balance(self, threshold_usd: Decimal) -> ReconcileReport:
        try:
            balance = await self._r.provider.balance()
        except WaveSpeedError as exc:
            raise from_provider_error(exc) from None
        url = self._r.provider.base_url
        await asyncio.to_thread(self._reconciler.snapshot, url, balance)
        info = await asyncio.to_thread(
            self._reconciler.reconcile_latest, url, threshold=threshold_usd
        )
        if info is None:
            return ReconcileReport(
                balance_usd=balance,
                reconciled=False,
                summary="first snapshot; nothing to compare yet",
            )
        if info.flagged:
            activity.logger.warning("ledger drift above threshold: %s", info.describe())
        return ReconcileReport(
            balance_usd=balance,
            reconciled=True,
            drift_usd=info.drift,
            balance_spent_usd=info.balance_spent,
            ledger_cost_usd=info.ledger_cost,
            flagged=info.flagged,
            summary=info.describe(),
        )

    @activity.defn(name="expire_stale_reservations")
    async def expire_stale_reservations(self) -> ExpiryReport:
        """Release holds past their expiry whose workflow is no longer running."""
        stale = await asyncio.to_thread(self._r.ledger.stale_reservations)
        client = activity.client()
        expired = []
        for hold in stale:
            if hold.workflow_id:
                try:
                    description = await client.get_workflow_handle(hold.workflow_id).describe()
                    if description.status == WorkflowExecutionStatus.RUNNING:
                        continue  # still working: its own settle/release will close the hold
                    reason = f"workflow {hold.workflow_id} ended {description.status.name.lower()} without closing it"
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    reason = f"workflow {hold.workflow_id} no longer exists"
            else:
                reason = "no workflow recorded"
            if await asyncio.to_thread(
                self._r.ledger.expire, operation_id=hold.operation_id, reason=reason
            ):
                expired.append(hold.operation_id)
                activity.logger.warning("expired hold %s: %s", hold.operation_id, reason)
        return ExpiryReport(examined=len(stale), expired=expired)
