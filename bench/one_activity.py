"""The smallest durable unit: the yardstick for orchestration overhead (kept free of heavy
imports so the workflow sandbox loads it quickly)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def bench_noop(value: str) -> str:
    return value


@workflow.defn(name="BenchOneActivity")
class OneActivityWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_activity(
            bench_noop, value, start_to_close_timeout=timedelta(seconds=10)
        )
