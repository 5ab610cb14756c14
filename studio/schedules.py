"""The Temporal Schedule that runs ledger maintenance (idempotent to install)."""

from __future__ import annotations

from datetime import timedelta

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

from config.settings import StudioSettings
from contracts.maintenance import MaintenanceRequest
from workflows.maintenance import LedgerMaintenanceWorkflow

SCHEDULE_ID = "studio-ledger-maintenance"


def maintenance_request(settings: StudioSettings, **changes: object) -> MaintenanceRequest:
    """The drift limits the settings configure, with ``changes`` on top (CLI options)."""
    limits: dict[str, object] = {
        "drift_threshold_usd": settings.drift_threshold_usd,
        "drift_threshold_ratio": settings.drift_threshold_ratio,
        "drift_floor_usd": settings.drift_floor_usd,
        "cumulative_threshold_usd": settings.drift_cumulative_usd,
    }
    return MaintenanceRequest.model_validate(limits | changes)


async def ensure_maintenance_schedule(
    client: Client, settings: StudioSettings, *, every: timedelta
) -> bool:
    """Create the schedule if it does not exist; True when it was created now."""
    try:
        await client.create_schedule(
            SCHEDULE_ID,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    LedgerMaintenanceWorkflow.run,
                    maintenance_request(settings),
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
