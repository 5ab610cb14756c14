"""`studio worker --processes N`: N workers share the queue, a killed one comes back, SIGTERM
stops them all (real dev server, emulator and worker processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from config.settings import StudioSettings
from studio.api import Studio
from studio.stack import settings_env
from studio.worker_pool import WorkerPool, WorkerPoolError

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _wait_for(what: str, check: Callable[[], T], within: float = 60.0) -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"not within {within:.0f} s: {what}")


async def _poller_identities(client: Client, task_queue: str) -> set[str]:
    """The queue's pollers as the server sees them; none yet when the dev server, busy with the
    other test process, cancels or times out the call (the caller asks again until its bound)."""
    try:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=timedelta(seconds=10),
        )
    except RPCError as exc:
        if exc.status not in TRANSIENT:
            raise
        return set()
    return {p.identity for p in response.pollers}


TRANSIENT = (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE)


@pytest.fixture
def pool_settings(settings: StudioSettings) -> StudioSettings:
    return settings.model_copy(update={"task_queue": f"pool-{uuid.uuid4().hex[:6]}"})


@pytest.fixture
def pool(pool_settings: StudioSettings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        **settings_env(pool_settings),
        "STUDIO_MAINTENANCE_EVERY_MINUTES": "0",
        "STUDIO_WAVESPEED_API_KEY": pool_settings.api_key(),
    }
    with (tmp_path / "pool.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "studio.cli", "worker", "--processes", "2"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    yield process
    if process.poll() is None:
        process.kill()
        for child in _children(process.pid):
            os.kill(child, signal.SIGKILL)
        process.wait(timeout=10)


async def test_two_processes_share_the_queue_a_killed_one_returns_and_sigterm_stops_all(
    pool: subprocess.Popen[bytes], pool_settings: StudioSettings, client: Client, user_id: str
) -> None:
    first = _wait_for(
        "two worker processes", lambda: len(_children(pool.pid)) == 2 and _children(pool.pid)
    )
    deadline = time.monotonic() + 60
    while len(await _poller_identities(client, pool_settings.task_queue)) < 2:
        assert time.monotonic() < deadline, "the server never saw two workers polling"
        await asyncio.sleep(0.5)

    studio = Studio(client, pool_settings)
    results = await asyncio.gather(
        *(
            studio.generate_image(f"pool {i} {uuid.uuid4().hex[:6]}", user_id=user_id)
            for i in range(6)
        )
    )
    assert all(r.variations[0].outputs for r in results)

    victim = sorted(first)[0]
    os.kill(victim, signal.SIGKILL)
    replaced = _wait_for(
        "the killed worker replaced",
        lambda: (kids := _children(pool.pid)) and victim not in kids and len(kids) == 2 and kids,
    )
    assert replaced - first, "a new process took the killed one's place"
    after = await studio.generate_image(f"pool after {uuid.uuid4().hex[:6]}", user_id=user_id)
    assert after.variations[0].outputs

    pool.send_signal(signal.SIGTERM)
    assert pool.wait(timeout=60) == 0, "a requested shutdown is a clean exit"
    assert not any(Path(f"/proc/{pid}").exists() for pid in replaced), "no worker left behind"


def test_pool_configuration_errors_name_the_setting() -> None:
    with pytest.raises(WorkerPoolError, match="processes"):
        WorkerPool(0)
    with pytest.raises(WorkerPoolError, match="STUDIO_METRICS_BIND"):
        WorkerPool(2, env={"STUDIO_METRICS_BIND": "nonsense"}).child_env(1)
    env = WorkerPool(3, env={"STUDIO_METRICS_BIND": "0.0.0.0:9100"}).child_env(2)
    assert env["STUDIO_METRICS_BIND"] == "0.0.0.0:9102"
