"""The floor: the smallest durable units, run on the engine's own worker settings.

``OneActivityWorkflow`` is one activity (optionally sleeping like a provider would);
``NoActivityWorkflow`` is a workflow that only completes. The engine's throughput is reported as a
ratio to them, measured in the same run (kept free of heavy imports so the sandbox loads it fast).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def bench_noop(value: str, seconds: float = 0.0) -> str:
    """Return ``value``, after ``seconds`` of waiting (a provider's latency, minus the provider)."""
    if seconds > 0:
        await asyncio.sleep(seconds)
    return value


@workflow.defn(name="BenchOneActivity")
class OneActivityWorkflow:
    @workflow.run
    async def run(self, value: str, seconds: float = 0.0) -> str:
        return await workflow.execute_activity(
            bench_noop,
            args=[value, seconds],
            start_to_close_timeout=timedelta(seconds=seconds + 30),
        )


@workflow.defn(name="BenchNoActivity")
class NoActivityWorkflow:
    @workflow.run
    async def run(self, value: str, seconds: float = 0.0) -> str:
        return value
