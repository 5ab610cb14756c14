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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import (
    PollerBehavior,
    PollerBehaviorAutoscaling,
    PollerBehaviorSimpleMaximum,
    ResourceBasedSlotConfig,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkerTuner,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.abandoned import AbandonedActivities
from activities.inline import InlineActivities
from activities.maintenance import MaintenanceActivities
from activities.pipeline import PipelineActivities
from activities.preflight import PreflightActivities
from activities.resources import StudioResources
from activities.store import StoreActivities
from activities.submit import SubmitActivities
from activities.uploads import UploadActivities
from activities.usage import UsageActivities
from activities.wait import WaitActivities
from activities.webhooks import WebhookActivities
from config.settings import StudioSettings, get_settings
from studio.logs import LogContextInterceptor, configure_logging
from studio.metrics import Health, MetricsServer, sdk_metrics
from studio.schedules import ensure_maintenance_schedule
from studio.temporal import connect, connect_config, describe_target
from studio.worker_health import watch
from workflows.abandoned import AbandonedPredictionsWorkflow
from workflows.maintenance import LedgerMaintenanceWorkflow
from workflows.operation import ImageOperationWorkflow
from workflows.pipeline import ImagePipelineWorkflow
from workflows.webhooks import CallerWebhookWorkflow

PASSTHROUGH = (
    "contracts",
    "config",
    "providers",
    "blobs",
    "ledger",
    "domain",
    "activities",
    "workflows",
    "studio",
    "pydantic",
    "sqlalchemy",
    "httpx",
    "yaml",
)
WORKFLOWS = [
    ImageOperationWorkflow,
    ImagePipelineWorkflow,
    LedgerMaintenanceWorkflow,
    AbandonedPredictionsWorkflow,
    CallerWebhookWorkflow,
]


def activities_for(resources: StudioResources) -> list[Callable[..., Any]]:
    preflight = PreflightActivities(resources)
    usage = UsageActivities(resources)
    pipeline = PipelineActivities(resources)
    maintenance = MaintenanceActivities(resources)
    return [
        preflight.reserve_operation,
        UploadActivities(resources).upload_inputs,
        SubmitActivities(resources).submit_prediction,
        InlineActivities(resources).run_inline_prediction,
        WaitActivities(resources).wait_for_prediction,
        StoreActivities(resources).store_outputs,
        usage.settle_operation,
        usage.release_reservation,
        usage.record_run_end,
        pipeline.reserve_pipeline,
        pipeline.prepare_step,
        pipeline.record_step,
        pipeline.find_gate_decision,
        pipeline.record_gate_decision,
        pipeline.release_pipeline,
        pipeline.rank_images,
        pipeline.crop_images,
        maintenance.reconcile_balance,
        maintenance.reconcile_window,
        maintenance.expire_stale_reservations,
        AbandonedActivities(resources).sweep_abandoned,
        WebhookActivities(resources).deliver_webhook,
    ]


def workflow_runner(sandboxed: bool) -> WorkflowRunner:
    if not sandboxed:
        return UnsandboxedWorkflowRunner()
    # Our modules and their dependencies are deterministic at import; passing them through means a
    # new run does not re-import them in its sandbox.
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )


def slot_tuner(settings: StudioSettings) -> WorkerTuner | None:
    """The resource-based tuner when asked for (None: the fixed maxima apply)."""
    if settings.worker_tuner == "fixed":
        return None
    return WorkerTuner.create_resource_based(
        target_memory_usage=0.8,
        target_cpu_usage=0.9,
        workflow_config=ResourceBasedSlotConfig(
            minimum_slots=2, maximum_slots=settings.worker_max_workflow_tasks
        ),
        activity_config=ResourceBasedSlotConfig(
            minimum_slots=10, maximum_slots=settings.worker_max_activities
        ),
    )


def poller_behavior(settings: StudioSettings, count: int) -> PollerBehavior:
    """Fixed poll counts, or the server-driven autoscaler bounded by ``count``."""
    if settings.worker_poller_autoscaling:
        return PollerBehaviorAutoscaling(minimum=1, maximum=count, initial=min(count, 2))
    return PollerBehaviorSimpleMaximum(maximum=count)


def build_worker(
    client: Client,
    resources: StudioResources,
    *,
    task_queue: str | None = None,
    workflows: Sequence[type] = WORKFLOWS,
    activities: Sequence[Callable[..., Any]] | None = None,
) -> Worker:
    """A worker for every workflow and activity of the engine (or, for the benchmark's floor,
    other ``workflows``/``activities`` on exactly the same worker settings).

    Workflow-task concurrency stays modest: on small machines more concurrent sandboxed workflow
    tasks make the GIL thrash (measured in docs/benchmarks); activities are mostly I/O waits.
    """
    settings = resources.settings
    max_concurrent_activities = settings.worker_max_activities
    runner = workflow_runner(settings.worker_sandbox)
    tuner = slot_tuner(settings)
    return Worker(
        client,
        task_queue=task_queue or resources.settings.task_queue,
        workflows=workflows,
        activities=activities_for(resources) if activities is None else activities,
        activity_executor=ThreadPoolExecutor(
            max_workers=max_concurrent_activities, thread_name_prefix="studio-activity"
        ),
        tuner=tuner,
        max_concurrent_activities=None if tuner else max_concurrent_activities,
        max_concurrent_workflow_tasks=None if tuner else settings.worker_max_workflow_tasks,
        workflow_task_poller_behavior=poller_behavior(settings, settings.worker_workflow_pollers),
        activity_task_poller_behavior=poller_behavior(settings, settings.worker_activity_pollers),
        max_cached_workflows=settings.worker_max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=10),
        sticky_queue_schedule_to_start_timeout=timedelta(
            seconds=settings.worker_sticky_timeout_seconds
        ),
        workflow_runner=runner,
        interceptors=[LogContextInterceptor()],
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
        interceptors=[LogContextInterceptor()],
    )


async def run_worker(settings: StudioSettings, stop: asyncio.Event) -> None:
    """Poll until ``stop``; with ``STUDIO_METRICS_BIND``, serve ``/metrics`` and ``/healthz``."""
    sdk = sdk_metrics() if settings.metrics_bind else None
    client = await connect(settings, runtime=sdk.runtime if sdk else None)
    resources = StudioResources.from_settings(settings)
    if settings.maintenance_every_minutes > 0:
        await ensure_maintenance_schedule(
            client,
            settings,
            every=timedelta(minutes=settings.maintenance_every_minutes),
        )
    health = Health()
    server = MetricsServer(settings.metrics_bind, sdk, health) if settings.metrics_bind else None
    try:
        async with contextlib.AsyncExitStack() as workers:
            worker = build_worker(client, resources)
            await workers.enter_async_context(worker)
            submit_worker = build_submit_worker(client, resources)
            if submit_worker is not None:
                await workers.enter_async_context(submit_worker)
            watcher = asyncio.create_task(watch(client, worker, settings.task_queue, health))
            if server is not None:
                server.start()
            logging.getLogger("studio.worker").info(
                "worker on %s, task queue %s, provider %s, blobs %s",
                describe_target(connect_config(settings)),
                settings.task_queue,
                settings.provider_url,
                settings.blob_backend,
            )
            await stop.wait()
            watcher.cancel()
    finally:
        if server is not None:
            server.stop()
        await resources.aclose()


def main() -> None:
    settings = get_settings()
    configure_logging(settings)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
