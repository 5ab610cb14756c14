"""A worker process for the floor workflows, built by ``worker.build_worker`` from the same
settings (environment) as the engine's worker: same runner, slots and executor, other workflows.

    python bench/floor_worker.py   # task queue: $STUDIO_TASK_QUEUE
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from activities.resources import StudioResources  # noqa: E402
from bench.one_activity import NoActivityWorkflow, OneActivityWorkflow, bench_noop  # noqa: E402
from config.settings import get_settings  # noqa: E402
from studio.temporal import connect  # noqa: E402
from worker import build_worker  # noqa: E402


async def serve() -> None:
    settings = get_settings()
    client = await connect(settings)
    resources = StudioResources.from_settings(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = build_worker(
        client,
        resources,
        workflows=[OneActivityWorkflow, NoActivityWorkflow],
        activities=[bench_noop],
    )
    try:
        async with worker:
            await stop.wait()
    finally:
        await resources.aclose()


if __name__ == "__main__":
    asyncio.run(serve())
