"""Scheduled ledger maintenance: reconciliation with the provider balance and stale-hold expiry.

Started by a Temporal Schedule (``studio.schedules``), so every run is visible in the UI with its
drift in the summary; a flagged drift fails nothing but is shown as the run's current details.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.maintenance import MaintenanceActivities
    from contracts.maintenance import MaintenanceReport, MaintenanceRequest
    from workflows.policies import MAINTENANCE


@workflow.defn(name="LedgerMaintenance")
class LedgerMaintenanceWorkflow:
    @workflow.run
    async def run(self, request: MaintenanceRequest) -> MaintenanceReport:
        """Reconcile, then expire stale holds; the outcome is the run's current details."""
        if workflow.patched("maintenance-drift-limits"):
            # The whole request: relative and cumulative limits, match grace, reset.
            reconcile = await workflow.execute_activity_method(
                MaintenanceActivities.reconcile_window,
                request,
                summary="compare the provider balance and predictions with the ledger",
                start_to_close_timeout=MAINTENANCE.start_to_close,
                retry_policy=MAINTENANCE.retry,
            )
        else:
            reconcile = await workflow.execute_activity_method(
                MaintenanceActivities.reconcile_balance,
                request.drift_threshold_usd,
                summary="compare the provider balance with the ledger",
                start_to_close_timeout=MAINTENANCE.start_to_close,
                retry_policy=MAINTENANCE.retry,
            )
        expiry = await workflow.execute_activity_method(
            MaintenanceActivities.expire_stale_reservations,
            summary="expire holds of vanished workflows",
            start_to_close_timeout=MAINTENANCE.start_to_close,
            retry_policy=MAINTENANCE.retry,
        )
        workflow.set_current_details(
            f"**{'drift flagged' if reconcile.flagged else 'books agree'}** · {reconcile.summary}\n\n"
            f"- stale holds examined: {expiry.examined}, expired: {len(expiry.expired)}"
        )
        return MaintenanceReport(reconcile=reconcile, expiry=expiry)
