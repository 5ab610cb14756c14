"""A declared pipeline, run durably: each step a child ``ImageOperation`` run, linked to its parent.

The pipeline's worst case is reserved before the first step; each step draws its share and
settles its actual cost; whatever is left is released at the end, however it ends. Steps whose
dependencies are done run in parallel; a failure stops the rest, and a resume re-runs only the
steps whose stored outputs cannot be reused. A gate (``approve`` step) waits, durably and for days
if need be, for a person's ``decide`` Update; the hold for the steps after it stays in place
meanwhile, so an approval can never fail for budget, and a rejection releases it.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.pipeline import PipelineActivities
    from contracts.failures import PREFLIGHT_REFUSALS
    from contracts.operation import OperationRequest, OperationResult, StoredOutput
    from contracts.pipeline import (
        AWAITING_APPROVAL,
        FINISHED_STATES,
        ApprovalProgress,
        ApprovalStatus,
        CropRequest,
        GateDecision,
        GateLookup,
        GateOutcome,
        GateRecord,
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
    from contracts.search import (
        STUDIO_MODEL,
        STUDIO_OPERATION,
        STUDIO_PIPELINE,
        STUDIO_STATUS,
        STUDIO_USER,
    )
    from domain.pipelines.definition import PipelineDefinition
    from domain.pipelines.resolve import RunInputs, resolve_runs
    from workflows import policies
    from workflows.details import pipeline_details
    from workflows.failure_text import failure_message
    from workflows.gates import (
        apply_decision,
        check_decision,
        rejection,
        reused_approval,
        timeout_decision,
        waiting_approval,
        waiting_gates,
    )
    from workflows.operation import ImageOperationWorkflow
    from workflows.run_ends import recorded


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

    @workflow.update(name="decide")
    def decide(self, decision: GateDecision) -> GateOutcome:
        """A person approves (picking outputs) or rejects at a waiting gate."""
        gate = check_decision(decision, self._steps, self._request.pipeline_id)  # may have moved on
        approval, outcome = apply_decision(self._request.pipeline_id, gate, decision, self._steps)
        self._update(gate, approval=approval)
        return outcome

    @decide.validator
    def _check_decision(self, decision: GateDecision) -> None:
        check_decision(decision, self._steps, self._request.pipeline_id)

    @workflow.run
    async def run(self, request: PipelineRunRequest) -> PipelineResult:
        """The run, its ending written to its durable record (``workflows.run_ends``)."""
        return await recorded(
            self._run(request), "pipeline", request.user_id, str(request.definition.get("name", ""))
        )

    async def _run(self, request: PipelineRunRequest) -> PipelineResult:
        reservation = await self._reserve(request)
        for layout in reservation.steps:  # the catalogue's choice where none was named
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
                if progress.state in (
                    StepState.PENDING,
                    StepState.RUNNING,
                    StepState.AWAITING_APPROVAL,
                ):
                    self._update(
                        progress.name, state=StepState.CANCELLED if cancelled else StepState.SKIPPED
                    )
            await self._release(self._state)
            if cancelled:
                raise asyncio.CancelledError() from None
            failed = [s for s in self._steps.values() if s.state == StepState.FAILED]
            message = "; ".join(
                f"step {s.name} failed: {s.error}" for s in failed
            ) or failure_message(exc)
            raise ApplicationError(
                f"pipeline {self._definition.name} stopped: {message}. Resume it to re-run only what is missing.",
                {"failed_steps": [s.name for s in failed]},
                type="StepFailed",
                non_retryable=True,
            ) from None
        rejected = [s for s in self._steps.values() if s.state == StepState.REJECTED]
        if rejected:
            await self._stop_rejected(rejected)
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
                start_to_close_timeout=policies.LEDGER.start_to_close,
                retry_policy=policies.LEDGER.retry,
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
        if layout.operation == "approve":
            await self._run_gate(layout, reservation)
            return
        step = self._definition.step(layout.name)
        for upstream in layout.best_of:
            if upstream not in self._best:
                self._best[upstream] = await workflow.execute_activity_method(
                    PipelineActivities.rank_images,
                    [o.blob for o in self._outputs[upstream] if o.blob is not None],
                    summary=f"pick the most detailed output of {upstream}",
                    start_to_close_timeout=policies.LOCAL_STEP.start_to_close,
                    retry_policy=policies.LOCAL_STEP.retry,
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
                self._update(layout.name, state=StepState.FAILED, error=failure_message(err))
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

    # ------------------------------------------------------------------ gates

    async def _run_gate(self, layout: StepLayout, reservation: PipelineReservation) -> None:
        """Show the outputs, wait for a decision (or the timeout), pass on what was chosen."""
        name, request = layout.name, self._request
        settings = self._definition.step(name).approval
        assert settings is not None
        shown = [o for step in settings.show for o in self._outputs[step]]
        if len(reservation.lineage) > 1:  # a resume: the same outputs may be approved already
            approved = await workflow.execute_activity_method(
                PipelineActivities.find_gate_decision,
                GateLookup(
                    user_id=request.user_id,
                    gate=name,
                    shown=shown,
                    choose=settings.choose,
                    lineage=reservation.lineage,
                ),
                summary=f"was gate {name} approved for these outputs before?",
                start_to_close_timeout=policies.LOCAL_STEP.start_to_close,
                retry_policy=policies.LOCAL_STEP.retry,
            )
            if approved is not None:
                self._finish_gate(name, approved, ApprovalStatus.REUSED, shown=shown)
                return
        approval = waiting_approval(settings, shown, request.user_id, workflow.now())
        self._update(name, state=StepState.AWAITING_APPROVAL, approval=approval)
        self._sync_waiting()  # the hook for caller notifications: progress says who waits
        try:
            await workflow.wait_condition(
                lambda: self._approval(name).status is not ApprovalStatus.WAITING,
                timeout=settings.wait,
                timeout_summary=f"gate {name}: {settings.on_timeout} after {settings.timeout}",
            )
        except TimeoutError:
            if self._approval(name).status is ApprovalStatus.WAITING:
                self._update(
                    name, approval=timeout_decision(self._approval(name), settings.timeout)
                )
        approval = self._approval(name)
        if approval.status is ApprovalStatus.REJECTED:
            self._update(name, state=StepState.REJECTED)
        else:
            chosen = [approval.shown[i] for i in approval.chosen]
            await workflow.execute_activity_method(
                PipelineActivities.record_gate_decision,
                GateRecord(
                    pipeline_id=request.pipeline_id,
                    user_id=request.user_id,
                    gate=name,
                    shown=shown,
                    choose=settings.choose,
                    chosen=chosen,
                ),
                summary=f"remember the approval of {name} for resumes",
                start_to_close_timeout=policies.LOCAL_STEP.start_to_close,
                retry_policy=policies.LOCAL_STEP.retry,
            )
            self._finish_gate(name, chosen, ApprovalStatus.APPROVED)
        self._sync_waiting()

    def _finish_gate(
        self,
        name: str,
        outputs: list[StoredOutput],
        status: ApprovalStatus,
        *,
        shown: list[StoredOutput] | None = None,
    ) -> None:
        self._outputs[name] = outputs
        reused = status is ApprovalStatus.REUSED
        self._update(
            name,
            state=StepState.REUSED if reused else StepState.SUCCEEDED,
            runs_done=1,
            reused_runs=int(reused),
            outputs=outputs,
            approval=self._steps[name].approval or reused_approval(shown or [], outputs),
        )

    def _approval(self, gate: str) -> ApprovalProgress:
        approval = self._steps[gate].approval
        assert approval is not None
        return approval

    def _sync_waiting(self) -> None:
        """``awaiting_approval`` (state and ``StudioStatus``) while any gate waits, else running."""
        state = AWAITING_APPROVAL if waiting_gates(self._steps) else "running"
        if self._state in ("running", AWAITING_APPROVAL) and state != self._state:
            self._state = state
            workflow.upsert_search_attributes([STUDIO_STATUS.value_set(state)])
        self._show()

    async def _stop_rejected(self, rejected: list[StepProgress]) -> None:
        """A person (or a gate's timeout) said no: nothing after the gate ran; give the hold back."""
        self._state = "rejected"
        await self._release("rejected")
        raise rejection(
            self._definition.name, {s.name: self._approval(s.name) for s in rejected}, self._cost()
        )

    # ------------------------------------------------------------------ step runs

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
            start_to_close_timeout=policies.LOCAL_STEP.start_to_close,
            retry_policy=policies.LOCAL_STEP.retry,
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
                start_to_close_timeout=policies.LOCAL_STEP.start_to_close,
                retry_policy=policies.LOCAL_STEP.retry,
            )
            cost = Decimal("0")
        else:
            result = await self._run_child(layout, prepared.request)
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
            start_to_close_timeout=policies.LOCAL_STEP.start_to_close,
            retry_policy=policies.LOCAL_STEP.retry,
        )
        self._bump(layout.name, runs_done=1, cost_usd=cost)
        return outputs, cost

    async def _run_child(self, layout: StepLayout, child: OperationRequest) -> OperationResult:
        """One paid run of a step: a child ``ImageOperation``, linked to this pipeline in the UI."""
        request = self._request
        self._steps[layout.name] = self._steps[layout.name].model_copy(
            update={
                "child_workflow_ids": [
                    *self._steps[layout.name].child_workflow_ids,
                    child.operation_id,
                ]
            }
        )
        return await workflow.execute_child_workflow(
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

    async def _release(self, status: str) -> None:
        await workflow.execute_activity_method(
            PipelineActivities.release_pipeline,
            args=[self._request.pipeline_id, status],
            summary="release what is left of the quote",
            start_to_close_timeout=policies.LEDGER.start_to_close,
            retry_policy=policies.LEDGER.retry,
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
        workflow.set_current_details(
            pipeline_details(
                self._state, self._definition.name, self._cost(), self._quoted, self._steps
            )
        )
