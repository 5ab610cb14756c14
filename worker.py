"""Run an Image Studio worker: ``python worker.py`` (configuration from the environment).

Scaling out is running more of these against the same Temporal cluster and task queue; there is
no scheduler of our own. The API key is read here, from the environment, and never leaves the
process: workflows and their history only ever see blob references and prediction ids.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.maintenance import MaintenanceActivities
from activities.pipeline import PipelineActivities
from activities.preflight import PreflightActivities
from activities.resources import StudioResources
from activities.store import StoreActivities
from activities.submit import SubmitActivities
from activities.uploads import UploadActivities
from activities.usage import UsageActivities
from activities.wait import WaitActivities
from studio.schedules import ensure_maintenance_schedule
from studio.settings import StudioSettings, get_settings
from studio.temporal import connect
from workflows.maintenance import LedgerMaintenanceWorkflow
from workflows.operation import ImageOperationWorkflow
from workflows.pipeline import ImagePipelineWorkflow

PASSTHROUGH = (
    "studio",
    "providers",
    "activities",
    "workflows",
    "pydantic",
    "sqlalchemy",
    "httpx",
    "yaml",
)
WORKFLOWS = [ImageOperationWorkflow, ImagePipelineWorkflow, LedgerMaintenanceWorkflow]


def activities_for(resources: StudioResources) -> list:
    preflight = PreflightActivities(resources)
    usage = UsageActivities(resources)
    pipeline = PipelineActivities(resources)
    maintenance = MaintenanceActivities(resources)
    return [
        preflight.reserve_operation,
        UploadActivities(resources).upload_inputs,
        SubmitActivities(resources).submit_prediction,
        WaitActivities(resources).wait_for_prediction,
        StoreActivities(resources).store_outputs,
        usage.settle_operation,
        usage.release_reservation,
        pipeline.reserve_pipeline,
        pipeline.prepare_step,
        pipeline.record_step,
        pipeline.release_pipeline,
        pipeline.rank_images,
        pipeline.crop_images,
        maintenance.reconcile_balance,
        maintenance.expire_stale_reservations,
    ]


def build_worker(
    client: Client,
    resources: StudioResources,
    *,
    task_queue: str | None = None,
) -> Worker:
    """A worker for every workflow and activity of the engine.

    Workflow-task concurrency stays modest: on small machines more concurrent sandboxed workflow
    tasks make the GIL thrash (measured in docs/temporal notes); activities are mostly I/O waits.
    """
    settings = resources.settings
    max_concurrent_activities = settings.worker_max_activities
    runner = (
        SandboxedWorkflowRunner(
            # Our modules and their dependencies are deterministic at import; passing them through
            # means a new run does not re-import them in its sandbox.
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
        )
        if settings.worker_sandbox
        else UnsandboxedWorkflowRunner()
    )
    return Worker(
        client,
        task_queue=task_queue or resources.settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(resources),
        activity_executor=ThreadPoolExecutor(
            max_workers=max_concurrent_activities, thread_name_prefix="studio-activity"
        ),
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_workflow_tasks,
        graceful_shutdown_timeout=timedelta(seconds=10),
        workflow_runner=runner,
    )


async def run_worker(settings: StudioSettings, stop: asyncio.Event) -> None:
    client = await connect(settings)
    resources = StudioResources.from_settings(settings)
    if settings.maintenance_every_minutes > 0:
        await ensure_maintenance_schedule(
            client,
            settings,
            every=timedelta(minutes=settings.maintenance_every_minutes),
            threshold=settings.drift_threshold_usd,
        )
    try:
        async with build_worker(client, resources):
            logging.getLogger("studio.worker").info(
                "worker on %s, task queue %s, provider %s",
                settings.temporal_address,
                settings.task_queue,
                settings.provider_url,
            )
            await stop.wait()
    finally:
        await resources.aclose()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
