"""Ledger housekeeping run on a schedule: reconcile with the provider's balance, expire holds
whose workflow vanished."""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta
from decimal import Decimal

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.failures import from_provider_error
from activities.resources import StudioResources
from contracts.maintenance import ExpiryReport, MaintenanceRequest, ReconcileReport
from ledger.reconcile import DriftLimits, ListedPrediction, Reconciler, Window
from providers.wavespeed.errors import WaveSpeedError

LIST_PAGE_SIZE = 100
MAX_LIST_PAGES = 50
"""Beyond 5,000 predictions in one window, matching is skipped (the drift is still checked)."""


class MaintenanceActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources
        self._reconciler = Reconciler(resources.ledger.engine)

    @activity.defn(name="reconcile_balance")
    async def reconcile_balance(self, threshold_usd: Decimal) -> ReconcileReport:
        """Runs started before ``reconcile_window`` existed (default limits otherwise)."""
        return await self.reconcile_window(MaintenanceRequest(drift_threshold_usd=threshold_usd))

    @activity.defn(name="reconcile_window")
    async def reconcile_window(self, request: MaintenanceRequest) -> ReconcileReport:
        """Snapshot the balance, then reconcile everything since the last reconciled window."""
        try:
            balance = await self._r.provider.balance()
        except WaveSpeedError as exc:
            raise from_provider_error(exc) from None
        url = self._r.provider.base_url
        await asyncio.to_thread(self._reconciler.snapshot, url, balance)
        window = await asyncio.to_thread(self._reconciler.window, url)
        if window is None:
            return ReconcileReport(
                balance_usd=balance,
                reconciled=False,
                summary="first snapshot; nothing to compare yet",
            )
        listed, problem = await self._listed(window)
        info = await asyncio.to_thread(
            functools.partial(
                self._reconciler.reconcile,
                window,
                DriftLimits.of(request),
                listed=listed,
                grace=timedelta(seconds=request.match_grace_seconds),
                bills_failed=self._r.settings.provider_bills_failed,
                reset_cumulative=request.reset_cumulative,
                listing_problem=problem,
            )
        )
        report = info.report(balance)
        if report.flagged:
            activity.logger.warning("ledger drift flagged: %s", report.summary)
        return report

    async def _listed(self, window: Window) -> tuple[list[ListedPrediction] | None, str]:
        """The provider's predictions created in the window's listing range, or why not."""
        after, before = window.listing_range()
        found: list[ListedPrediction] = []
        try:
            for page in range(1, MAX_LIST_PAGES + 1):
                items = (
                    await self._r.provider.list_predictions(
                        created_after=after,
                        created_before=before,
                        include_inputs=False,
                        page=page,
                        page_size=LIST_PAGE_SIZE,
                    )
                ).items
                found += [ListedPrediction(p.id, p.status, p.model, p.created_at) for p in items]
                if len(items) < LIST_PAGE_SIZE:
                    return found, ""
        except WaveSpeedError as exc:
            return None, f"predictions not matched: the provider's list failed ({exc})"
        return None, f"predictions not matched: more than {len(found)} in the window"

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
                    status = description.status
                    if status == WorkflowExecutionStatus.RUNNING:
                        continue  # still working: its own settle/release will close the hold
                    ended = status.name.lower() if status is not None else "in an unknown state"
                    reason = f"workflow {hold.workflow_id} ended {ended} without closing it"
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
