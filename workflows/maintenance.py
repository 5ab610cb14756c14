"""Scheduled ledger maintenance: reconciliation with the provider balance and stale-hold expiry.

Started by a Temporal Schedule (``studio.schedules``), so every run is visible in the UI with its
drift in the summary; a flagged drift fails nothing but is shown as the run's current details.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.maintenance import ExpiryReport, MaintenanceActivities, ReconcileReport
    from studio.contracts import Frozen


class MaintenanceRequest(Frozen):
    drift_threshold_usd: Decimal = Decimal("0.50")


class MaintenanceReport(Frozen):
    reconcile: ReconcileReport
    expiry: ExpiryReport


OPTIONS = {
    "start_to_close_timeout": timedelta(minutes=5),
    "retry_policy": RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(minutes=1)),
}


@workflow.defn(name="LedgerMaintenance")
class LedgerMaintenanceWorkflow:
    @workflow.run
    async def run(self, request: MaintenanceRequest) -> MaintenanceReport:
        reconcile = await workflow.execute_activity_method(
            MaintenanceActivities.reconcile_balance,
            request.drift_threshold_usd,
            summary="compare the provider balance with the ledger",
            **OPTIONS,
        )
        expiry = await workflow.execute_activity_method(
            MaintenanceActivities.expire_stale_reservations,
            summary="expire holds of vanished workflows",
            **OPTIONS,
        )
        workflow.set_current_details(
            f"**{'drift flagged' if reconcile.flagged else 'books agree'}** · {reconcile.summary}\n\n"
            f"- stale holds examined: {expiry.examined}, expired: {len(expiry.expired)}"
        )
        return MaintenanceReport(reconcile=reconcile, expiry=expiry)
