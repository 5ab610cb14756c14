"""Temporal's own floor on this machine, measured in the same run as the engine.

The floor workflows run in a worker process of their own built with the engine's worker settings
(``bench/floor_worker.py``), so a ratio engine / floor says how much of the limit the engine
leaves on the table, independent of how fast the machine is today.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from temporalio.client import Client

FLOOR_WORKFLOWS = {"one_activity": "BenchOneActivity", "no_activity": "BenchNoActivity"}


async def run_concurrently(
    client: Client, workflow: str, task_queue: str, n: int, seconds: float = 0.0
) -> float:
    """Wall seconds for ``n`` runs of ``workflow`` started at once (start to last result)."""
    started = time.perf_counter()
    await asyncio.gather(
        *(
            client.execute_workflow(
                workflow,
                args=[str(i), seconds],
                id=f"floor-{workflow}-{uuid.uuid4().hex}",
                task_queue=task_queue,
            )
            for i in range(n)
        )
    )
    return time.perf_counter() - started


async def sequential_ms(client: Client, task_queue: str, n: int) -> list[float]:
    """Seconds per one-activity run, one after the other (3 warm-up runs excluded)."""
    values = []
    for i in range(n + 3):
        started = time.perf_counter()
        await client.execute_workflow(
            FLOOR_WORKFLOWS["one_activity"],
            args=[str(i), 0.0],
            id=f"floor-seq-{uuid.uuid4().hex}",
            task_queue=task_queue,
        )
        if i >= 3:
            values.append(time.perf_counter() - started)
    return values


async def floor_throughput(
    client: Client, task_queue: str, levels: list[int], latencies: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Wall time and runs/s of each floor workflow at each concurrency and latency."""
    rows = []
    for latency in latencies:
        for n in levels:
            for name, workflow in FLOOR_WORKFLOWS.items():
                if latency and name == "no_activity":
                    continue  # nothing to wait for: the same as at 0 s
                wall = await run_concurrently(client, workflow, task_queue, n, float(latency))
                rows.append(
                    {
                        "workflow": name,
                        "latency_s": latency,
                        "concurrent": n,
                        "wall_s": round(wall, 2),
                        "ops_per_s": round(n / wall, 1),
                    }
                )
    return rows


def floor_row(
    floor: list[dict[str, Any]], workflow: str, latency: int, n: int
) -> dict[str, Any] | None:
    """The floor measurement matching one engine measurement."""
    return next(
        (
            r
            for r in floor
            if r["workflow"] == workflow and r["latency_s"] == latency and r["concurrent"] == n
        ),
        None,
    )
