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
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.failures import FailureType
    from activities.preflight import PreflightActivities
    from activities.store import StoreActivities
    from activities.submit import SubmitActivities
    from activities.uploads import UploadActivities
    from activities.usage import UsageActivities
    from activities.wait import WaitActivities
    from providers.wavespeed.errors import TASK_ERROR_NAMES
    from studio.contracts import (
        TERMINAL_STATUSES,
        OperationPhase,
        OperationProgress,
        OperationRequest,
        OperationResult,
        PredictionOutcome,
        PredictionStatus,
        PreparedOperation,
        ReleaseRequest,
        SettleRequest,
        StoredOutput,
        StoreRequest,
        Submission,
        SubmitRequest,
        UploadedInputs,
        VariationResult,
        VariationStatus,
        WaitRequest,
    )
    from studio.search import STUDIO_STATUS
    from workflows import policies

PREFLIGHT_REFUSALS = (FailureType.INVALID_REQUEST, FailureType.QUOTA_EXCEEDED)


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
        self._in_flight: set[str] = set()
        self._webhooks: dict[str, PredictionOutcome] = {}
        self._submit_lock = asyncio.Lock()

    @workflow.signal
    def prediction_finished(self, outcome: PredictionOutcome) -> None:
        """A verified WaveSpeed webhook: ends the wait for that prediction without polling.

        Duplicates and predictions this run does not own are ignored.
        """
        if (
            outcome.prediction_id in self._prediction_ids
            and outcome.prediction_id not in self._webhooks
        ):
            if outcome.status in TERMINAL_STATUSES:
                self._webhooks[outcome.prediction_id] = outcome

    @workflow.query
    def progress(self) -> OperationProgress:
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
        prepared = await self._reserve(request)
        try:
            inputs = await self._upload_inputs(prepared)
            variations = await asyncio.gather(
                *(self._run_variation(prepared, inputs, i) for i in range(prepared.quantity))
            )
            delivered = [v for v in variations if v.status == VariationStatus.SUCCEEDED]
            if not delivered:
                raise _all_failed(variations)
            self._set_phase(
                OperationPhase.SETTLING, f"charging {len(delivered)} delivered result(s)"
            )
            settlement = await workflow.execute_local_activity_method(
                UsageActivities.settle_operation,
                SettleRequest(
                    operation_id=request.operation_id,
                    reservation_id=prepared.reservation_id,
                    user_id=request.user_id,
                    units_charged=len(delivered),
                    unit_price_usd=prepared.unit_price_usd,
                    predictions=[v.prediction_ids[-1] for v in delivered],
                    delivered_blobs=[o.blob.sha256 for v in delivered for o in v.outputs if o.blob],
                    undelivered_predictions=self._undelivered,
                    failed_predictions=self._failed_predictions,
                    model_id=request.model_id,
                    operation=request.operation,
                ),
                summary=f"settle: charge {len(delivered)} x ${prepared.unit_price_usd}",
                **policies.LEDGER_LOCAL,
            )
        except BaseException as exc:
            await self._release(prepared, exc)
            raise
        self._cost = settlement.charged_usd
        self._set_phase(
            OperationPhase.SUCCEEDED,
            f"settled ${settlement.charged_usd} for {len(delivered)} of {prepared.quantity} result(s)",
        )
        self._upsert_status("succeeded" if len(delivered) == prepared.quantity else "partial")
        return OperationResult(
            operation_id=request.operation_id,
            workflow_id=workflow.info().workflow_id,
            user_id=request.user_id,
            operation=request.operation,
            model_id=request.model_id,
            variations=list(variations),
            cost_usd=settlement.charged_usd,
            prediction_ids=list(self._prediction_ids),
        )

    # ------------------------------------------------------------------ phases

    async def _reserve(self, request: OperationRequest) -> PreparedOperation:
        try:
            prepared = await workflow.execute_local_activity_method(
                PreflightActivities.reserve_operation,
                request,
                summary=f"pre-flight: validate and reserve for {request.user_id}",
                **policies.LEDGER_LOCAL,
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
        if not _has_blobs(prepared.inputs):
            return prepared.inputs
        self._set_phase(OperationPhase.UPLOADING, "uploading input images to WaveSpeed")
        uploaded: UploadedInputs = await workflow.execute_activity_method(
            UploadActivities.upload_inputs,
            prepared,
            summary="upload input images",
            **policies.UPLOAD,
        )
        return uploaded.inputs

    async def _run_variation(
        self, prepared: PreparedOperation, inputs: dict[str, Any], index: int
    ) -> VariationResult:
        """Submit, wait and store one variation; a failure is reported, not raised."""
        request = prepared.request
        body = _variation_body(inputs, index, request.vary_seed, prepared.takes_seed)
        attempt_timeout = timedelta(seconds=prepared.attempt_timeout_seconds)
        predictions: list[str] = []
        provider_code: int | None = None
        for attempt in range(prepared.provider_resubmits + 1):
            try:
                async with self._submit_slot(prepared):
                    submission: Submission = await workflow.execute_activity_method(
                        SubmitActivities.submit_prediction,
                        SubmitRequest(
                            submission_id=f"{request.operation_id}/v{index}/a{attempt}",
                            operation_id=request.operation_id,
                            user_id=request.user_id,
                            model_path=prepared.model_path,
                            body=body,
                        ),
                        summary=f"submit to {prepared.model_path} (variation {index + 1})",
                        task_queue=prepared.submit_task_queue,
                        **policies.submit_options(attempt_timeout),
                    )
            except ActivityError as err:
                return self._variation_failed(
                    index, predictions, f"submit failed: {_reason(err)}", None
                )
            predictions.append(submission.prediction_id)
            self._prediction_ids.append(submission.prediction_id)
            self._in_flight.add(submission.prediction_id)
            self._set_phase(
                OperationPhase.WAITING,
                f"submitted as prediction {submission.prediction_id}; waiting",
            )
            try:
                outcome = await self._wait(prepared, submission, attempt_timeout)
            except ActivityError as err:
                if workflow.cancellation_reason() is not None:
                    raise asyncio.CancelledError() from None  # still running at WaveSpeed: in flight
                self._in_flight.discard(submission.prediction_id)
                reason = (
                    f"prediction {submission.prediction_id} did not finish within "
                    f"{prepared.poll.timeout_seconds:.0f} s"
                    if isinstance(err.cause, TimeoutError)
                    else _reason(err)
                )
                return self._variation_failed(index, predictions, reason, None)
            self._in_flight.discard(submission.prediction_id)
            if outcome.status != PredictionStatus.COMPLETED:
                self._failed_predictions.append(outcome.prediction_id)
                provider_code = outcome.code
                name = TASK_ERROR_NAMES.get(outcome.code or 0, "Unknown")
                reason = (
                    f"WaveSpeed prediction {outcome.prediction_id} {outcome.status} with code "
                    f"{outcome.code} ({name}): {outcome.error or 'no message'}"
                )
                if (
                    outcome.code is not None
                    and 5000 <= outcome.code < 6000
                    and attempt < prepared.provider_resubmits
                ):
                    self._detail = f"{reason}; submitting a fresh prediction"
                    continue
                return self._variation_failed(index, predictions, reason, provider_code)
            try:
                stored = await self._stored_outputs(prepared, outcome)
            except ActivityError as err:
                self._undelivered.append(outcome.prediction_id)
                return self._variation_failed(
                    index, predictions, f"storing failed: {_reason(err)}", None
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

    def _submit_slot(
        self, prepared: PreparedOperation
    ) -> contextlib.AbstractAsyncContextManager[Any]:
        """Variations of a model without a seed have identical bodies: submit them one after the
        other, so an ambiguous submit can only ever match its own prediction."""
        if prepared.takes_seed or prepared.quantity == 1:
            return contextlib.nullcontext()
        return self._submit_lock

    async def _wait(
        self, prepared: PreparedOperation, submission: Submission, attempt_timeout: timedelta
    ) -> PredictionOutcome:
        """Whichever comes first: a verified webhook (signal) or the polling activity."""
        prediction_id = submission.prediction_id
        polling = asyncio.create_task(
            workflow.execute_activity_method(
                WaitActivities.wait_for_prediction,
                WaitRequest(
                    prediction_id=prediction_id,
                    submitted_at=submission.submitted_at,
                    poll=prepared.poll,
                    operation_id=prepared.request.operation_id,
                    store=_store_request(prepared, prediction_id, []),
                ),
                summary=f"wait for prediction {prediction_id}",
                **policies.wait_options(
                    attempt_timeout, timedelta(seconds=prepared.poll.timeout_seconds)
                ),
            )
        )
        webhook = asyncio.create_task(
            workflow.wait_condition(lambda: prediction_id in self._webhooks)
        )
        try:
            await workflow.wait([polling, webhook], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            polling.cancel()  # the run is being cancelled: stop polling too
            raise
        finally:
            webhook.cancel()
        if polling.done():
            return polling.result()
        polling.cancel()  # the webhook answered: no more polls
        with contextlib.suppress(BaseException):
            await polling
        return self._webhooks[prediction_id]

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
            _store_request(prepared, outcome.prediction_id, outcome.outputs),
            summary=f"store {len(outcome.outputs)} output(s) of {outcome.prediction_id}",
            **policies.STORE,
        )

    async def _release(self, prepared: PreparedOperation, exc: BaseException) -> None:
        cancelled = (
            isinstance(exc, asyncio.CancelledError) or workflow.cancellation_reason() is not None
        )
        reason = "cancelled" if cancelled else _reason(exc)
        # WaveSpeed has no cancel: a prediction still running will finish and be billed to us.
        abandoned = sorted(self._in_flight) if cancelled else []
        self._set_phase(
            OperationPhase.CANCELLED if cancelled else OperationPhase.FAILED,
            f"{reason}; reservation released, nothing charged",
        )
        await workflow.execute_local_activity_method(
            UsageActivities.release_reservation,
            ReleaseRequest(
                operation_id=prepared.request.operation_id,
                reservation_id=prepared.reservation_id,
                reason=reason[:500],
                undelivered_predictions=[*self._undelivered, *abandoned],
                failed_predictions=self._failed_predictions,
                model_id=prepared.request.model_id,
            ),
            summary="release the reservation",
            **policies.LEDGER_LOCAL,
        )
        self._upsert_status("cancelled" if cancelled else "failed")

    # ------------------------------------------------------------------ bookkeeping

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
        request = self._request
        lines = [
            f"**{phase.value}** · {detail}",
            "",
            f"- operation: `{request.operation}` · model: `{request.model_id}` · user: `{request.user_id}`",
            f"- variations: {self._variations_done}/{request.num_variations} done",
        ]
        if self._prediction_ids:
            lines.append(f"- predictions: {', '.join(self._prediction_ids)}")
        if self._cost:
            lines.append(f"- charged: ${self._cost}")
        workflow.set_current_details("\n".join(lines))

    def _upsert_status(self, status: str) -> None:
        workflow.upsert_search_attributes([STUDIO_STATUS.value_set(status)])


def _store_request(
    prepared: PreparedOperation, prediction_id: str, outputs: list[Any]
) -> StoreRequest:
    return StoreRequest(
        prediction_id=prediction_id,
        user_id=prepared.request.user_id,
        outputs=outputs,
        output_kind=prepared.output_kind,
        expected_format=prepared.output_format,
    )


def _variation_body(
    inputs: dict[str, Any], index: int, vary_seed: bool, takes_seed: bool
) -> dict[str, Any]:
    """Variation i of a fixed seed uses seed + i (the seed system's rule). Without a seed, each
    variation gets its own random one (drawn deterministically by the workflow): identical
    bodies would make an ambiguous submit's reconciliation unable to tell whose prediction it is."""
    body = dict(inputs)
    seed = body.get("seed")
    if vary_seed and index and isinstance(seed, int) and seed >= 0:
        body["seed"] = seed + index
    elif takes_seed and (not isinstance(seed, int) or seed < 0):
        body["seed"] = workflow.random().randint(0, 2**31 - 1)
    return body


def _has_blobs(value: Any) -> bool:
    if isinstance(value, dict):
        return "sha256" in value or any(_has_blobs(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_blobs(v) for v in value)
    return False


def _reason(exc: BaseException) -> str:
    """The innermost human message of an activity failure."""
    while isinstance(exc, (ActivityError, ChildWorkflowError)) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, ApplicationError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return f"timed out ({exc.type.name.lower() if exc.type else 'timeout'})"
    return str(exc) or type(exc).__name__


def _all_failed(variations: list[VariationResult]) -> ApplicationError:
    first = variations[0]
    codes = sorted({v.provider_code for v in variations if v.provider_code is not None})
    if len(variations) == 1:
        message = first.error or "the operation failed"
    else:
        message = f"all {len(variations)} variations failed; first: {first.error}"
    failure_type = FailureType.PREDICTION_FAILED if codes else FailureType.OPERATION_FAILED
    return ApplicationError(
        message,
        {"provider_codes": codes, "variations": [v.model_dump(mode="json") for v in variations]},
        type=failure_type,
        non_retryable=True,
    )
