"""A declared pipeline, run durably: each step a child ``ImageOperation`` run, linked to its parent.

The pipeline's worst case is reserved before the first step; each step draws its share and
settles its actual cost; whatever is left is released at the end, however it ends. Steps whose
dependencies are done run in parallel; a failure stops the rest, and a resume re-runs only the
steps whose stored outputs cannot be reused.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.pipeline import PipelineActivities
    from studio.contracts import OperationResult, StoredOutput
    from studio.pipelines.contracts import (
        FINISHED_STATES,
        CropRequest,
        PipelineProgress,
        PipelineReservation,
        PipelineResult,
        PipelineRunRequest,
        PreparedStep,
        StepLayout,
        StepProgress,
        StepRecord,
        StepRunSpec,
        StepState,
    )
    from studio.pipelines.definition import PipelineDefinition
    from studio.pipelines.resolve import RunInputs, resolve_runs
    from studio.search import (
        STUDIO_MODEL,
        STUDIO_OPERATION,
        STUDIO_PIPELINE,
        STUDIO_STATUS,
        STUDIO_USER,
    )
    from workflows import policies
    from workflows.operation import PREFLIGHT_REFUSALS, ImageOperationWorkflow, _reason


LOCAL_STEP = {
    "start_to_close_timeout": timedelta(minutes=5),
    "retry_policy": policies.LEDGER["retry_policy"],
}


class StepFailed(Exception):
    """A step ended without outputs; the pipeline stops."""


@workflow.defn(name="ImagePipeline")
class ImagePipelineWorkflow:
    @workflow.init
    def __init__(self, request: PipelineRunRequest) -> None:
        self._request = request
        self._definition = PipelineDefinition.model_validate(request.definition)
        self._steps: dict[str, StepProgress] = {
            s.name: StepProgress(name=s.name, operation=s.operation, model_id=s.model)
            for s in self._definition.steps
        }
        self._outputs: dict[str, list[StoredOutput]] = {}
        self._best: dict[str, int] = {}
        self._state = "reserving"
        self._quoted = Decimal("0")

    @workflow.query
    def progress(self) -> PipelineProgress:
        return PipelineProgress(
            pipeline_id=self._request.pipeline_id,
            name=self._definition.name,
            state=self._state,
            steps=list(self._steps.values()),
            cost_usd=self._cost(),
            quoted_usd=self._quoted,
        )

    @workflow.run
    async def run(self, request: PipelineRunRequest) -> PipelineResult:
        reservation = await self._reserve(request)
        for (
            layout
        ) in reservation.steps:  # the catalogue's choice where the definition named no model
            self._steps[layout.name] = self._steps[layout.name].model_copy(
                update={"model_id": layout.model_id, "runs": layout.planned_runs}
            )
        self._state = "running"
        self._show()
        tasks = [
            asyncio.create_task(self._run_step(layout, reservation)) for layout in reservation.steps
        ]
        try:
            await asyncio.gather(*tasks)
        except BaseException as exc:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # children finish cancelling first
            cancelled = (
                isinstance(exc, asyncio.CancelledError)
                or workflow.cancellation_reason() is not None
            )
            self._state = "cancelled" if cancelled else "failed"
            for progress in self._steps.values():
                if progress.state in (StepState.PENDING, StepState.RUNNING):
                    self._update(
                        progress.name, state=StepState.CANCELLED if cancelled else StepState.SKIPPED
                    )
            await self._release(self._state)
            if cancelled:
                raise asyncio.CancelledError() from None
            failed = [s for s in self._steps.values() if s.state == StepState.FAILED]
            message = "; ".join(f"step {s.name} failed: {s.error}" for s in failed) or _reason(exc)
            raise ApplicationError(
                f"pipeline {self._definition.name} stopped: {message}. Resume it to re-run only what is missing.",
                {"failed_steps": [s.name for s in failed]},
                type="StepFailed",
                non_retryable=True,
            ) from None
        self._state = "succeeded"
        await self._release("succeeded")
        return PipelineResult(
            pipeline_id=request.pipeline_id,
            name=self._definition.name,
            user_id=request.user_id,
            steps=list(self._steps.values()),
            cost_usd=self._cost(),
            quoted_usd=self._quoted,
            resume_of=request.resume_of,
        )

    # ------------------------------------------------------------------ steps

    async def _reserve(self, request: PipelineRunRequest) -> PipelineReservation:
        try:
            reservation = await workflow.execute_activity_method(
                PipelineActivities.reserve_pipeline,
                request,
                summary="validate and reserve the quote",
                **policies.LEDGER,
            )
        except ActivityError as err:
            cause = err.cause
            self._state = "refused"
            self._show()
            workflow.upsert_search_attributes([STUDIO_STATUS.value_set("refused")])
            if isinstance(cause, ApplicationError) and cause.type in PREFLIGHT_REFUSALS:
                raise ApplicationError(
                    cause.message, *cause.details, type=cause.type, non_retryable=True
                ) from None
            raise
        self._quoted = reservation.quoted_usd
        return reservation

    async def _run_step(self, layout: StepLayout, reservation: PipelineReservation) -> None:
        await workflow.wait_condition(
            lambda: all(self._steps[d].state in FINISHED_STATES for d in layout.depends_on)
        )
        if any(
            self._steps[d].state not in (StepState.SUCCEEDED, StepState.REUSED)
            for d in layout.depends_on
        ):
            self._update(layout.name, state=StepState.SKIPPED)
            return
        step = self._definition.step(layout.name)
        for upstream in layout.best_of:
            if upstream not in self._best:
                self._best[upstream] = await workflow.execute_activity_method(
                    PipelineActivities.rank_images,
                    [o.blob for o in self._outputs[upstream] if o.blob is not None],
                    summary=f"pick the most detailed output of {upstream}",
                    **LOCAL_STEP,
                )
        runs = resolve_runs(
            step,
            layout.fan_out,
            self._outputs,
            self._best.__getitem__,
            reservation.externals.__getitem__,
        )
        self._update(layout.name, state=StepState.RUNNING, runs=len(runs))
        run_tasks = [
            asyncio.create_task(self._run_once(layout, index, len(runs), run, reservation))
            for index, run in enumerate(runs)
        ]
        try:
            results = await asyncio.gather(*run_tasks)
        except BaseException as err:
            for task in run_tasks:  # one run failed or the pipeline is cancelled: stop the others
                task.cancel()
            await asyncio.gather(*run_tasks, return_exceptions=True)
            if (
                isinstance(err, (ActivityError, ChildWorkflowError))
                and workflow.cancellation_reason() is None
            ):
                self._update(layout.name, state=StepState.FAILED, error=_reason(err))
                raise StepFailed(layout.name) from None
            self._update(layout.name, state=StepState.CANCELLED)
            raise
        self._outputs[layout.name] = [o for outputs, _ in results for o in outputs]
        progress = self._steps[layout.name]
        self._update(
            layout.name,
            state=StepState.REUSED if progress.reused_runs == len(runs) else StepState.SUCCEEDED,
            outputs=self._outputs[layout.name],
        )

    async def _run_once(
        self,
        layout: StepLayout,
        index: int,
        runs: int,
        run: RunInputs,
        reservation: PipelineReservation,
    ) -> tuple[list[StoredOutput], Decimal]:
        request = self._request
        step = self._definition.step(layout.name)
        prepared: PreparedStep = await workflow.execute_activity_method(
            PipelineActivities.prepare_step,
            StepRunSpec(
                pipeline_id=request.pipeline_id,
                user_id=request.user_id,
                step=step.model_dump(mode="json"),
                run_index=index,
                runs=runs,
                images=run.images,
                prompt=run.prompt,
                lineage=reservation.lineage,
            ),
            summary=f"prepare {layout.name} run {index + 1}/{runs}: reuse or run",
            **LOCAL_STEP,
        )
        if prepared.cached is not None:
            self._bump(layout.name, reused_runs=1, runs_done=1)
            return prepared.cached, Decimal("0")
        if prepared.request is None:
            outputs = await workflow.execute_activity_method(
                PipelineActivities.crop_images,
                CropRequest(
                    user_id=request.user_id, image=run.images["base"][0], formats=list(step.formats)
                ),
                summary=f"crop for {len(step.formats)} platform format(s)",
                **LOCAL_STEP,
            )
            cost = Decimal("0")
        else:
            child = prepared.request
            self._steps[layout.name] = self._steps[layout.name].model_copy(
                update={
                    "child_workflow_ids": [
                        *self._steps[layout.name].child_workflow_ids,
                        child.operation_id,
                    ]
                }
            )
            result: OperationResult = await workflow.execute_child_workflow(
                ImageOperationWorkflow.run,
                child,
                id=child.operation_id,
                static_summary=f"{layout.name} · {child.operation} · {child.model_id} · pipeline {self._definition.name}"[
                    :200
                ],
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(STUDIO_USER, request.user_id),
                        SearchAttributePair(STUDIO_OPERATION, child.operation),
                        SearchAttributePair(STUDIO_MODEL, child.model_id),
                        SearchAttributePair(STUDIO_PIPELINE, request.pipeline_id),
                        SearchAttributePair(STUDIO_STATUS, "running"),
                    ]
                ),
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            outputs, cost = result.outputs, result.cost_usd
        await workflow.execute_activity_method(
            PipelineActivities.record_step,
            StepRecord(
                pipeline_id=request.pipeline_id,
                user_id=request.user_id,
                step=layout.name,
                run_index=index,
                fingerprint=prepared.fingerprint,
                deterministic=prepared.deterministic,
                outputs=outputs,
                cost_usd=cost,
            ),
            summary=f"remember {layout.name} outputs for resume",
            **LOCAL_STEP,
        )
        self._bump(layout.name, runs_done=1, cost_usd=cost)
        return outputs, cost

    async def _release(self, status: str) -> None:
        await workflow.execute_activity_method(
            PipelineActivities.release_pipeline,
            args=[self._request.pipeline_id, status],
            summary="release what is left of the quote",
            **policies.LEDGER,
        )
        workflow.upsert_search_attributes([STUDIO_STATUS.value_set(status)])
        self._show()

    # ------------------------------------------------------------------ bookkeeping

    def _cost(self) -> Decimal:
        return sum((s.cost_usd for s in self._steps.values()), Decimal("0"))

    def _update(self, name: str, **changes: object) -> None:
        self._steps[name] = self._steps[name].model_copy(update=changes)
        self._show()

    def _bump(self, name: str, **increments: object) -> None:
        current = self._steps[name]
        self._update(name, **{k: getattr(current, k) + v for k, v in increments.items()})

    def _show(self) -> None:
        lines = [
            f"**{self._state}** · pipeline `{self._definition.name}` · cost ${self._cost()} of ${self._quoted} quoted",
            "",
            "| step | operation | state | runs | cost |",
            "|---|---|---|---|---|",
        ]
        for s in self._steps.values():
            runs = f"{s.runs_done}/{s.runs}" + (
                f" ({s.reused_runs} reused)" if s.reused_runs else ""
            )
            lines.append(f"| {s.name} | {s.operation} | {s.state.value} | {runs} | ${s.cost_usd} |")
        workflow.set_current_details("\n".join(lines))
