"""Run an Image Studio worker: ``python worker.py`` (configuration from the environment).

Scaling out is running more of these against the same Temporal cluster and task queue; there is
no scheduler of our own. The API key is read here, from the environment, and never leaves the
process: workflows and their history only ever see blob references and prediction ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
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


def workflow_runner(sandboxed: bool) -> WorkflowRunner:
    if not sandboxed:
        return UnsandboxedWorkflowRunner()
    # Our modules and their dependencies are deterministic at import; passing them through means a
    # new run does not re-import them in its sandbox.
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )


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
    runner = workflow_runner(settings.worker_sandbox)
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
        sticky_queue_schedule_to_start_timeout=timedelta(
            seconds=settings.worker_sticky_timeout_seconds
        ),
        workflow_runner=runner,
    )


def build_submit_worker(client: Client, resources: StudioResources) -> Worker | None:
    """With ``STUDIO_SUBMIT_RATE_PER_SECOND``: paid submits get a queue of their own whose rate
    the Temporal server enforces across all workers (WaveSpeed's per-tier limits)."""
    settings = resources.settings
    if not settings.submit_rate_per_second:
        return None
    return Worker(
        client,
        task_queue=settings.submit_task_queue,
        activities=[SubmitActivities(resources).submit_prediction],
        max_task_queue_activities_per_second=settings.submit_rate_per_second,
        max_concurrent_activities=50,
        graceful_shutdown_timeout=timedelta(seconds=10),
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
        async with contextlib.AsyncExitStack() as workers:
            await workers.enter_async_context(build_worker(client, resources))
            submit_worker = build_submit_worker(client, resources)
            if submit_worker is not None:
                await workers.enter_async_context(submit_worker)
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
