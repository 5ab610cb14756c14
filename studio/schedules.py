"""The Temporal Schedule that runs ledger maintenance (idempotent to install)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from studio.settings import StudioSettings
from workflows.maintenance import LedgerMaintenanceWorkflow, MaintenanceRequest

SCHEDULE_ID = "studio-ledger-maintenance"


async def ensure_maintenance_schedule(
    client: Client, settings: StudioSettings, *, every: timedelta, threshold: Decimal
) -> bool:
    """Create the schedule if it does not exist; True when it was created now."""
    try:
        await client.create_schedule(
            SCHEDULE_ID,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    LedgerMaintenanceWorkflow.run,
                    MaintenanceRequest(drift_threshold_usd=threshold),
                    id="ledger-maintenance",
                    task_queue=settings.task_queue,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )
    except ScheduleAlreadyRunningError:
        return False
    return True
