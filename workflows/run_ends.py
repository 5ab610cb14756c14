"""Every run writes how it ended to the ledger, so its result outlives Temporal's retention.

The faces claim a run's record when they start it; the run itself fills in the ending (result,
cost, or the error the caller is shown) as its last act. A run started before this change
replays without the write (``workflow.patched``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.usage import UsageActivities
    from contracts.operation import OperationResult, RunEnding
    from contracts.pipeline import PipelineResult
    from workflows import policies

RECORDS_PATCH = "records-run-ends"


R = TypeVar("R", OperationResult, PipelineResult)


async def recorded(work: Awaitable[R], kind: str, user_id: str, operation: str) -> R:
    """``work``'s result, after its ending (or its failure) is written to the run's record."""
    base = {
        "run_id": workflow.info().workflow_id,
        "user_id": user_id,
        "kind": kind,
        "operation": operation,
    }
    try:
        result = await work
    except BaseException as exc:
        if workflow.patched(RECORDS_PATCH):
            cancelled = isinstance(exc, (asyncio.CancelledError, CancelledError))
            status = "cancelled" if cancelled else "failed"
            await _write(RunEnding(**base, status=status, error=error_of(exc)))
        raise
    if workflow.patched(RECORDS_PATCH):
        await _write(
            RunEnding(
                **base,
                status="completed",
                result=result.model_dump(mode="json"),
                cost_usd=result.cost_usd,
            )
        )
    return result


def error_of(exc: BaseException) -> dict[str, Any]:
    """The failure as the faces rebuild it (``studio.outcomes.failure_from_record``)."""
    if isinstance(exc, (asyncio.CancelledError, CancelledError)):
        return {"type": "Cancelled", "message": "the run was cancelled", "details": []}
    cause: BaseException = exc
    while isinstance(cause, FailureError) and not isinstance(cause, ApplicationError):
        if cause.cause is None:
            break
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        details = [d for d in cause.details if isinstance(d, dict)]
        return {
            "type": cause.type or "OperationFailed",
            "message": cause.message,
            "details": details,
        }
    return {"type": "OperationFailed", "message": str(exc)[:2000], "details": []}


async def _write(ending: RunEnding) -> None:
    await workflow.execute_local_activity_method(
        UsageActivities.record_run_end,
        ending,
        summary=f"record the end: {ending.status}",
        start_to_close_timeout=policies.LEDGER_LOCAL.start_to_close,
        retry_policy=policies.LEDGER_LOCAL.retry,
    )
