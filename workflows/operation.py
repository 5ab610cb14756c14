"""One generic workflow for every image operation, driven by the catalogue.

It decides; activities do the I/O. The order is the promise: reserve before paying, record the
prediction id before anything can retry, store the outputs before charging, charge once, and
release whatever was not delivered, whatever the end (success, failure or cancellation).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    TimeoutError,
)

with workflow.unsafe.imports_passed_through():
    from activities.inline import InlineActivities
    from activities.preflight import PreflightActivities
    from activities.store import StoreActivities
    from activities.submit import SubmitActivities
    from activities.uploads import UploadActivities
    from activities.usage import UsageActivities
    from contracts.failures import PREFLIGHT_REFUSALS, FailureType
    from contracts.operation import (
        OperationPhase,
        OperationProgress,
        OperationRequest,
        OperationResult,
        PredictionHint,
        PredictionOutcome,
        PredictionStatus,
        PreparedOperation,
        ReleaseRequest,
        Settlement,
        SettleRequest,
        StoredOutput,
        Submission,
        UploadedInputs,
        VariationResult,
        VariationStatus,
    )
    from contracts.search import STUDIO_STATUS
    from workflows import policies
    from workflows.abandoned import start_follow_up
    from workflows.failure_text import failure_message
    from workflows.operation_parts import (
        all_failed,
        current_details,
        has_blobs,
        store_request,
        submit_for,
        submit_slot,
        variation_body,
    )
    from workflows.prediction_waits import PredictionWaits
    from workflows.routing import (
        ROUTES_PATCH,
        ProviderDown,
        delivered_prices,
        finished,
        is_down,
        route_attempt,
        step_prepared,
    )
    from workflows.run_ends import recorded


@workflow.defn(name="ImageOperation")
class ImageOperationWorkflow:
    @workflow.init
    def __init__(self, request: OperationRequest) -> None:
        self._request = request
        self._phase = OperationPhase.PENDING
        self._detail = "waiting for pre-flight"
        self._prediction_ids: list[str] = []
        self._variations_done = 0
        self._cost = Decimal("0")
        self._undelivered: list[str] = []
        self._failed_predictions: list[str] = []
        self._unseen_end: list[str] = []
        """Predictions whose end the run never saw (its wait gave up): a follow-up watches them."""
        self._submitted = False
        self._waits = PredictionWaits()
        self._submit_lock = asyncio.Lock()

    @workflow.signal
    def prediction_finished(self, hint: PredictionHint) -> None:
        """A verified webhook says a prediction may be done: look now instead of at the next poll.

        Only a hint: the wait activity asks the provider and keeps what the provider says. One
        hint per prediction counts; duplicates and predictions this run does not own are ignored,
        so a flood of signals costs at most one extra look per prediction.
        """
        self._waits.hint(hint.prediction_id)

    @workflow.query
    def progress(self) -> OperationProgress:
        """Where the run is: phase, predictions, variations done, cost so far (no history)."""
        return OperationProgress(
            operation_id=self._request.operation_id,
            user_id=self._request.user_id,
            phase=self._phase,
            model_id=self._request.model_id,
            prediction_ids=list(self._prediction_ids),
            variations_done=self._variations_done,
            variations_total=self._request.num_variations,
            cost_usd=self._cost,
            detail=self._detail,
        )

    @workflow.run
    async def run(self, request: OperationRequest) -> OperationResult:
        """The run, its ending written to its durable record (``workflows.run_ends``)."""
        return await recorded(self._run(request), "operation", request.user_id, request.operation)

    async def _run(self, request: OperationRequest) -> OperationResult:
        """Reserve, then upload, submit and wait per variation, store, and charge what was
        delivered; release the hold if that does not happen.

        A cancel does not interrupt the work directly: the ledger decides first (one row-locked
        transaction moves the hold out of ``held``). If the release wins, the work is cancelled
        and the run ends cancelled; if the charge had committed, the cancel is too late and the
        run completes with its result (even when a replay never saw the charge's own answer).
        """
        self._waits.choose_version()
        prepared = await self._reserve(request)
        work = asyncio.create_task(self._work(prepared))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError as exc:
            verdict = await self._release(prepared, exc)
            if verdict.state != "settled":
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work
                raise
            result = await work  # charged before the cancel: deliver
            self._set_phase(
                OperationPhase.SUCCEEDED,
                f"{self._detail}; the cancel arrived after the charge: completed with its result",
            )
            return result.model_copy(update={"cancel_too_late": True})
        except BaseException as exc:
            await self._release(prepared, exc)
            raise

    async def _work(self, prepared: PreparedOperation) -> OperationResult:
        """Everything after the reservation, up to the charge."""
        if prepared.route and workflow.patched(ROUTES_PATCH):
            runs = [self._run_routed(prepared, i) for i in range(prepared.quantity)]
        else:
            inputs = await self._upload_inputs(prepared)
            runs = [self._run_variation(prepared, inputs, i) for i in range(prepared.quantity)]
        variations = list(await asyncio.gather(*runs))
        settlement = await self._settle(prepared, variations)
        if settlement.state not in ("settled", ""):
            raise ApplicationError(
                f"the reservation was {settlement.state} before the charge",
                type=FailureType.OPERATION_FAILED,
                non_retryable=True,
            )
        return self._completed(prepared, variations, settlement.charged_usd)

    async def _settle(
        self, prepared: PreparedOperation, variations: list[VariationResult]
    ) -> Settlement:
        """Charge the delivered variations (raises when none was delivered)."""
        request = prepared.request
        delivered = [v for v in variations if v.status == VariationStatus.SUCCEEDED]
        if not delivered:
            raise all_failed(variations)
        self._set_phase(OperationPhase.SETTLING, f"charging {len(delivered)} delivered result(s)")
        prices = delivered_prices(prepared, delivered) if prepared.route else {}
        return await workflow.execute_local_activity_method(
            UsageActivities.settle_operation,
            SettleRequest(
                operation_id=request.operation_id,
                reservation_id=prepared.reservation_id,
                user_id=request.user_id,
                units_charged=len(delivered),
                unit_price_usd=prepared.unit_price_usd,
                charged_usd=sum(prices.values(), Decimal("0")) if prepared.route else None,
                delivered_prices=prices,
                predictions=[v.prediction_ids[-1] for v in delivered],
                delivered_blobs=[o.blob.sha256 for v in delivered for o in v.outputs if o.blob],
                undelivered_predictions=self._undelivered,
                failed_predictions=self._failed_predictions,
                model_id=request.model_id,
                operation=request.operation,
                requested_units=prepared.quantity,
                started_at=workflow.info().start_time,
            ),
            summary=f"settle: charge {len(delivered)} x ${prepared.unit_price_usd}",
            start_to_close_timeout=policies.LEDGER_LOCAL.start_to_close,
            retry_policy=policies.LEDGER_LOCAL.retry,
        )

    def _completed(
        self,
        prepared: PreparedOperation,
        variations: list[VariationResult],
        charged: Decimal,
    ) -> OperationResult:
        request = prepared.request
        delivered = sum(v.status == VariationStatus.SUCCEEDED for v in variations)
        self._cost = charged
        self._set_phase(
            OperationPhase.SUCCEEDED,
            f"settled ${charged} for {delivered} of {prepared.quantity} result(s)",
        )
        self._upsert_status("succeeded" if delivered == prepared.quantity else "partial")
        first = next((v for v in variations if v.status == VariationStatus.SUCCEEDED), None)
        return OperationResult(
            provider=first.provider if first else None,
            model=first.model_id if first else None,
            attempts=[a for v in variations for a in v.attempts],
            operation_id=request.operation_id,
            workflow_id=workflow.info().workflow_id,
            user_id=request.user_id,
            operation=request.operation,
            model_id=request.model_id,
            variations=variations,
            cost_usd=charged,
            prediction_ids=list(self._prediction_ids),
        )

    async def _reserve(self, request: OperationRequest) -> PreparedOperation:
        try:
            prepared = await workflow.execute_local_activity_method(
                PreflightActivities.reserve_operation,
                request,
                summary=f"pre-flight: validate and reserve for {request.user_id}",
                start_to_close_timeout=policies.LEDGER_LOCAL.start_to_close,
                retry_policy=policies.LEDGER_LOCAL.retry,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type in PREFLIGHT_REFUSALS:
                self._set_phase(
                    OperationPhase.FAILED, f"refused before any paid call: {cause.message}"
                )
                self._upsert_status("refused")
                raise ApplicationError(
                    cause.message, *cause.details, type=cause.type, non_retryable=True
                ) from None
            raise
        self._set_phase(
            OperationPhase.RESERVED,
            f"reserved {prepared.quantity} x ${prepared.unit_price_usd} of {prepared.quota_category}",
        )
        return prepared

    async def _upload_inputs(self, prepared: PreparedOperation) -> dict[str, Any]:
        if not has_blobs(prepared.inputs) or prepared.provider != "wavespeed":
            return prepared.inputs  # multipart providers get the bytes with the paid call
        self._set_phase(OperationPhase.UPLOADING, "uploading input images to WaveSpeed")
        uploaded: UploadedInputs = await workflow.execute_activity_method(
            UploadActivities.upload_inputs,
            prepared,
            summary="upload input images",
            start_to_close_timeout=policies.UPLOAD.start_to_close,
            heartbeat_timeout=policies.UPLOAD.heartbeat,
            retry_policy=policies.UPLOAD.retry,
        )
        return uploaded.inputs

    async def _run_routed(self, prepared: PreparedOperation, index: int) -> VariationResult:
        """One variation along the route: the next entry only after one that ran nothing."""
        hops = []
        for number, step in enumerate(prepared.route):
            here = step_prepared(prepared, step)
            may_fall_back = number < len(prepared.route) - 1
            try:
                inputs = await self._upload_inputs(here)
                result = await self._run_variation(here, inputs, index, number, may_fall_back)
            except ProviderDown as down:
                hops.append(route_attempt(step, f"down: {down}"))
                self._detail = f"variation {index + 1}: {step.provider} ran nothing; next entry"
                continue
            return finished(result, step, hops)
        return self._variation_failed(index, [], "every entry of the route was down", None)

    async def _run_variation(
        self,
        prepared: PreparedOperation,
        inputs: dict[str, Any],
        index: int,
        route_step: int | None = None,
        may_fall_back: bool = False,
    ) -> VariationResult:
        """Submit, wait and store one variation; a failure is reported, not raised (except
        ``ProviderDown`` on a route entry that has a next one)."""
        request = prepared.request
        body = variation_body(inputs, index, request.vary_seed, prepared.takes_seed)
        attempt_timeout = timedelta(seconds=prepared.attempt_timeout_seconds)
        predictions: list[str] = []
        provider_code: int | None = None
        for attempt in range(prepared.provider_resubmits + 1):
            try:
                submission = await self._submit(
                    prepared, body, index, attempt, route_step, may_fall_back
                )
            except ActivityError as err:
                if may_fall_back and is_down(err):
                    raise ProviderDown(failure_message(err)) from None
                return self._variation_failed(
                    index, predictions, f"submit failed: {failure_message(err)}", None
                )
            predictions.append(submission.prediction_id)
            self._prediction_ids.append(submission.prediction_id)
            self._waits.own(submission.prediction_id)
            self._set_phase(
                OperationPhase.WAITING,
                f"submitted as prediction {submission.prediction_id}; waiting",
            )
            try:
                outcome = submission.outcome or await self._waits.wait(
                    prepared, submission, attempt_timeout
                )
            except ActivityError as err:
                if workflow.cancellation_reason() is not None:
                    raise asyncio.CancelledError() from None  # still running at WaveSpeed: in flight
                self._unseen_end.append(submission.prediction_id)
                reason = (
                    f"prediction {submission.prediction_id} did not finish within "
                    f"{prepared.poll.timeout_seconds:.0f} s"
                    if isinstance(err.cause, TimeoutError)
                    else failure_message(err)
                )
                return self._variation_failed(index, predictions, reason, None)
            if outcome.status != PredictionStatus.COMPLETED:
                self._failed_predictions.append(outcome.prediction_id)
                provider_code = outcome.code
                reason = outcome.reason or f"prediction {outcome.prediction_id} {outcome.status}"
                if outcome.retryable and attempt < prepared.provider_resubmits:
                    self._detail = f"{reason}; submitting a fresh prediction"
                    continue
                return self._variation_failed(index, predictions, reason, provider_code)
            try:
                stored = await self._stored_outputs(prepared, outcome)
            except ActivityError as err:
                self._undelivered.append(outcome.prediction_id)
                return self._variation_failed(
                    index, predictions, f"storing failed: {failure_message(err)}", None
                )
            if stored is None:
                self._undelivered.append(outcome.prediction_id)
                return self._variation_failed(
                    index, predictions, f"storing failed: {outcome.store_error}", None
                )
            self._variations_done += 1
            return VariationResult(
                index=index,
                status=VariationStatus.SUCCEEDED,
                prediction_ids=predictions,
                outputs=stored,
            )
        return self._variation_failed(index, predictions, "no attempt left", provider_code)

    async def _submit(
        self,
        prepared: PreparedOperation,
        body: dict[str, Any],
        index: int,
        attempt: int,
        route_step: int | None = None,
        may_fall_back: bool = False,
    ) -> Submission:
        """The paid POST for one variation attempt (its id keys the intent in the ledger)."""
        submit = policies.submit_policy(timedelta(seconds=prepared.attempt_timeout_seconds))
        look = self._waits.looks_after_submit(prepared) and not prepared.synchronous
        submit_request = submit_for(
            prepared, body, f"v{index}", attempt, route_step, look, may_fall_back
        )
        async with submit_slot(prepared, self._submit_lock):
            self._submitted = True
            if prepared.synchronous:
                return await workflow.execute_activity_method(
                    InlineActivities.run_inline_prediction,
                    submit_request,
                    summary=f"{prepared.provider}: {prepared.model_path} (variation {index + 1})",
                    start_to_close_timeout=submit.start_to_close,
                    schedule_to_close_timeout=submit.schedule_to_close,
                    retry_policy=submit.retry,
                )
            return await workflow.execute_activity_method(
                SubmitActivities.submit_prediction,
                submit_request,
                summary=f"submit to {prepared.model_path} (variation {index + 1})",
                task_queue=prepared.submit_task_queue if prepared.provider == "wavespeed" else None,
                start_to_close_timeout=submit.start_to_close,
                schedule_to_close_timeout=submit.schedule_to_close,
                retry_policy=submit.retry,
            )

    async def _stored_outputs(
        self, prepared: PreparedOperation, outcome: PredictionOutcome
    ) -> list[StoredOutput] | None:
        """The outputs in our blob store: stored by the wait itself, or now (after a webhook).

        None when they cannot be kept (expired, not the promised kind).
        """
        if outcome.stored is not None or outcome.store_error is not None:
            return outcome.stored
        self._set_phase(OperationPhase.STORING, f"storing outputs of {outcome.prediction_id}")
        return await workflow.execute_activity_method(
            StoreActivities.store_outputs,
            store_request(prepared, outcome.prediction_id, outcome.outputs),
            summary=f"store {len(outcome.outputs)} output(s) of {outcome.prediction_id}",
            start_to_close_timeout=policies.STORE.start_to_close,
            heartbeat_timeout=policies.STORE.heartbeat,
            retry_policy=policies.STORE.retry,
        )

    async def _release(self, prepared: PreparedOperation, exc: BaseException) -> Settlement:
        """Give the hold back unless the charge committed first (then the verdict says so).

        What the provider bills for predictions this run leaves behind is not guessed here: a
        follow-up reads the durable submissions and records each one's cost once it has ended.
        """
        cancelled = (
            isinstance(exc, asyncio.CancelledError) or workflow.cancellation_reason() is not None
        )
        reason = "cancelled" if cancelled else failure_message(exc)
        verdict = await workflow.execute_local_activity_method(
            UsageActivities.release_reservation,
            ReleaseRequest(
                operation_id=prepared.request.operation_id,
                reservation_id=prepared.reservation_id,
                reason=reason[:500],
                undelivered_predictions=self._undelivered,
                failed_predictions=self._failed_predictions,
                model_id=prepared.request.model_id,
                operation=prepared.request.operation,
                cancelled=cancelled,
                started_at=workflow.info().start_time,
            ),
            summary="release the reservation",
            start_to_close_timeout=policies.LEDGER_LOCAL.start_to_close,
            retry_policy=policies.LEDGER_LOCAL.retry,
        )
        if verdict.state == "settled":
            return verdict
        self._set_phase(
            OperationPhase.CANCELLED if cancelled else OperationPhase.FAILED,
            f"{reason}; reservation released, nothing charged",
        )
        if (
            self._submitted
            and (cancelled or self._unseen_end)
            and workflow.patched("abandoned-follow-up")
        ):
            await start_follow_up(prepared)
        self._upsert_status("cancelled" if cancelled else "failed")
        return verdict

    def _variation_failed(
        self, index: int, predictions: list[str], reason: str, code: int | None
    ) -> VariationResult:
        self._variations_done += 1
        self._detail = f"variation {index + 1} failed: {reason}"
        return VariationResult(
            index=index,
            status=VariationStatus.FAILED,
            prediction_ids=predictions,
            error=reason,
            provider_code=code,
        )

    def _set_phase(self, phase: OperationPhase, detail: str) -> None:
        self._phase = phase
        self._detail = detail
        workflow.set_current_details(
            current_details(
                phase,
                detail,
                self._request,
                self._variations_done,
                self._prediction_ids,
                self._cost,
            )
        )

    def _upsert_status(self, status: str) -> None:
        workflow.upsert_search_attributes([STUDIO_STATUS.value_set(status)])
