"""A worker is healthy when the Temporal server sees its pollers: asked, not assumed.

Every check asks the server (``DescribeTaskQueue``) whether this process's identity has polled the
workflow and activity task queues recently. A worker whose pollers died, whose connection broke
or whose task queue name is wrong fails it, where opening a socket to the frontend would not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import DescribeTaskQueueMode, TaskQueueType
from temporalio.api.taskqueue.v1 import PollerInfo, TaskQueue, TaskQueueVersionSelection
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from studio.metrics import Health

POLL_FRESH_SECONDS = 150.0
"""A long poll lasts about a minute; a poller not seen for longer than two is gone."""
KINDS = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}


async def poller_ages(client: Client, task_queue: str) -> dict[str, float | None]:
    """Seconds since this process last polled each kind of task (None: the server never saw it).

    Asks in the enhanced mode, which reports the pollers of every partition of the queue (the
    legacy answer lists only the root partition's, so a worker whose few pollers sit on other
    partitions looked dead), and merges the legacy answer for servers without that mode.
    """
    seen: dict[str, list[datetime]] = {name: [] for name in KINDS}
    with contextlib.suppress(RPCError):
        enhanced = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                api_mode=DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
                versions=TaskQueueVersionSelection(unversioned=True, all_active=True),
                task_queue_types=list(KINDS.values()),
                report_pollers=True,
            )
        )
        for version in enhanced.versions_info.values():
            for name, kind in KINDS.items():
                pollers = version.types_info[kind].pollers if kind in version.types_info else []
                seen[name] += _times_of(pollers, client.identity)
    for name, kind in KINDS.items():
        legacy = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=kind,
            )
        )
        seen[name] += _times_of(legacy.pollers, client.identity)
    now = datetime.now(UTC)
    return {
        name: (now - max(times)).total_seconds() if times else None for name, times in seen.items()
    }


def _times_of(pollers: Iterable[PollerInfo], identity: str) -> list[datetime]:
    return [p.last_access_time.ToDatetime(tzinfo=UTC) for p in pollers if p.identity == identity]


async def check(client: Client, worker: Worker, task_queue: str) -> tuple[bool, dict[str, Any]]:
    """(healthy, detail): the worker runs and the server saw both its pollers recently."""
    if worker.is_shutdown:
        return False, {"status": "worker stopped"}
    try:
        ages = await poller_ages(client, task_queue)
    except RPCError as exc:
        return False, {"status": f"Temporal unreachable: {exc.status.name}"}
    alive = all(age is not None and age < POLL_FRESH_SECONDS for age in ages.values())
    return alive, {
        "status": "pollers alive" if alive else "pollers not seen by the server",
        "task_queue": task_queue,
        "poll_age_seconds": {k: None if v is None else round(v, 1) for k, v in ages.items()},
    }


async def watch(
    client: Client,
    worker: Worker,
    task_queue: str,
    health: Health,
    *,
    every: float = 15.0,
    retry: float = 2.0,
) -> None:
    """Refresh ``health`` until cancelled: every ``every`` seconds, sooner while unhealthy."""
    while True:
        await asyncio.sleep(retry if not health.ok else every)
        with contextlib.suppress(Exception):
            health.record(*await check(client, worker, task_queue))
