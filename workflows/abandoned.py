"""The follow-up a run starts when it ends before charging (cancelled, or a prediction whose end
it never saw): sweep the operation's submissions until every prediction has ended and what the
provider billed for it is in the ledger.

Started as a child with ``ParentClosePolicy.ABANDON``, so it outlives the cancelled run; its id
is the operation id plus ``/abandoned``, so it is easy to find (and to wait for in tests).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.abandoned import AbandonedActivities
    from contracts.maintenance import AbandonedRequest, AbandonedSweep
    from contracts.operation import PreparedOperation
    from workflows.policies import MAINTENANCE


def follow_up_id(operation_id: str) -> str:
    """The workflow id of an operation's follow-up."""
    return f"{operation_id}/abandoned"


@workflow.defn(name="AbandonedPredictions")
class AbandonedPredictionsWorkflow:
    @workflow.run
    async def run(self, request: AbandonedRequest) -> AbandonedSweep:
        """Sweep, pause (growing), sweep again until nothing is pending (and no submit attempt
        can still be starting) or time is up."""
        deadline = workflow.now() + timedelta(seconds=request.max_wait_seconds)
        quiet_until = workflow.now() + timedelta(seconds=request.quiet_seconds)
        pause = request.poll_seconds
        while True:
            sweep = await workflow.execute_activity_method(
                AbandonedActivities.sweep_abandoned,
                request,
                summary=f"account for predictions of {request.operation_id}",
                start_to_close_timeout=MAINTENANCE.start_to_close,
                retry_policy=MAINTENANCE.retry,
            )
            workflow.set_current_details(
                f"billed: {len(sweep.billed)} (${sweep.cost_usd}), not billed: "
                f"{len(sweep.not_billed)}, nothing created: {len(sweep.nothing_created)}, "
                f"pending: {len(sweep.pending)}"
            )
            if (not sweep.pending and workflow.now() >= quiet_until) or workflow.now() >= deadline:
                return sweep
            await workflow.sleep(timedelta(seconds=pause))
            pause = min(request.max_poll_seconds, pause * 1.5)


async def start_follow_up(prepared: PreparedOperation) -> None:
    """From a run that ends before charging: start its follow-up as a child that outlives it
    (WaveSpeed cannot cancel a running prediction, and bills those that complete)."""
    poll = prepared.poll
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await workflow.start_child_workflow(
            AbandonedPredictionsWorkflow.run,
            AbandonedRequest(
                operation_id=prepared.request.operation_id,
                model_id=prepared.request.model_id,
                poll_seconds=max(1.0, poll.min_interval_seconds),
                max_poll_seconds=poll.max_interval_seconds,
                max_wait_seconds=poll.timeout_seconds + 600,
                quiet_seconds=prepared.attempt_timeout_seconds,
            ),
            id=follow_up_id(workflow.info().workflow_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"account for predictions left by {prepared.request.operation_id}",
        )
