"""Wait for a prediction by polling: one GET per activity attempt, retries are the loop.

This is the infinite-polling pattern from samples-python ``polling/infrequent``: while the
prediction runs, the attempt fails with a BENIGN ``PredictionPending`` error whose
``next_retry_delay`` sets the next poll. Retries are not written to history, so a 20-minute 3D job
costs the same history as a 2-second image, and a worker that dies between polls loses nothing:
the server simply hands the next attempt to another worker.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities import metrics
from activities.chaos import crash_point
from activities.failures import from_provider_error
from activities.resources import StudioResources
from activities.store import OutputStorer
from contracts.failures import FailureType
from contracts.operation import (
    TERMINAL_STATUSES,
    OutputKind,
    PollPolicy,
    PredictionOutcome,
    PredictionStatus,
    StoreRequest,
    WaitRequest,
)
from providers.catalogue import ModelSpec
from providers.wavespeed.errors import WaveSpeedError, prediction_failure
from providers.wavespeed.wire import Prediction

TRANSIENT_RETRY_SECONDS = 2.0
WAIT_TIMEOUT_SECONDS = {
    OutputKind.IMAGE: 600.0,
    OutputKind.MODEL_3D: 1800.0,
    OutputKind.TEXT: 180.0,
}


def poll_policy_for(spec: ModelSpec, webhook_fallback_seconds: float | None = None) -> PollPolicy:
    """Polling shaped by how long the model usually takes; the timeout by its output category.

    With webhooks configured, polling is only the safety net: one look right after submit, then
    nothing until ``webhook_fallback_seconds``.
    """
    return PollPolicy(
        expected_seconds=float(spec.typical_seconds),
        timeout_seconds=max(WAIT_TIMEOUT_SECONDS[spec.output.kind], spec.typical_seconds * 10.0),
        webhook_fallback_seconds=webhook_fallback_seconds,
    )


def next_poll_delay(policy: PollPolicy, elapsed_seconds: float) -> float:
    """Seconds until the next poll, given the time since submit.

    Schedule: right after submit, at ``quick_check`` (fast jobs), at the model's typical duration,
    then every ``growth`` x elapsed. For an 8 s model that is 0, 0.5, 8, 12.8, 20.5, 32.8 s: a job
    of the usual length is seen at once and a 30 s one costs six polls. Jobs between the quick
    check and the typical duration are seen at the typical duration; webhooks remove that wait.
    """
    elapsed = max(0.0, elapsed_seconds)
    if (
        policy.webhook_fallback_seconds is not None
        and elapsed < policy.webhook_fallback_seconds - 0.05
    ):
        return policy.webhook_fallback_seconds - elapsed  # the webhook should come first
    for milestone in (policy.quick_check_seconds, policy.expected_seconds):
        if elapsed < milestone - 0.05:
            return milestone - elapsed
    interval = max(policy.min_interval_seconds, policy.growth * elapsed)
    return min(policy.max_interval_seconds, interval)


def final_outcome(prediction: Prediction, *, polls: int = 0) -> PredictionOutcome | None:
    """The outcome of a prediction in a terminal state; None while it runs (or an unknown status,
    which is treated as still running: a new status must not end a paid job early)."""
    try:
        status = PredictionStatus(prediction.status)
    except ValueError:
        logging.getLogger(__name__).warning(
            "prediction %s has unknown status %r", prediction.id, prediction.status
        )
        return None
    if status not in TERMINAL_STATUSES:
        return None
    failure = (
        None
        if status is PredictionStatus.COMPLETED
        else prediction_failure(prediction.id, prediction.code, prediction.error or "", status)
    )
    return PredictionOutcome(
        prediction_id=prediction.id,
        status=status,
        outputs=prediction.outputs,
        error=prediction.error or "",
        code=prediction.code,
        inference_ms=prediction.inference_ms,
        has_nsfw_contents=list(prediction.has_nsfw_contents or []),
        polls=polls,
        retryable=failure.provider_retryable if failure else False,
        reason=str(failure) if failure else "",
    )


def count_completion(after_hint: bool, outcome: PredictionOutcome) -> None:
    """Metrics: how a prediction's end was seen (after a webhook or by polling) and how it ended."""
    metrics.COMPLETIONS.labels("webhook" if after_hint else "polling", outcome.status.value).inc()
    if outcome.status is not PredictionStatus.COMPLETED:
        metrics.provider_error("prediction", outcome.code or outcome.status.value)


class WaitActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources
        self._storer = OutputStorer(resources)

    @activity.defn(name="wait_for_prediction")
    async def wait_for_prediction(self, request: WaitRequest) -> PredictionOutcome:
        attempt = activity.info().attempt
        elapsed = (datetime.now(UTC) - request.submitted_at).total_seconds()
        delay = next_poll_delay(request.poll, elapsed)
        if attempt == 1 and request.looked:
            raise _pending(request, "running", elapsed, attempt, delay)  # the submit just looked
        try:
            with metrics.provider_call("poll"):
                provider = self._r.provider_for(request.provider)
                prediction = await provider.get_prediction(request.prediction_id)
        except WaveSpeedError as exc:
            metrics.provider_error("poll", exc)
            # A hiccup is not news about the job: look again soon, not at the next milestone.
            raise from_provider_error(
                exc, default_delay=min(delay, TRANSIENT_RETRY_SECONDS)
            ) from None
        outcome = final_outcome(prediction, polls=attempt)
        if outcome is not None:
            count_completion(request.after_hint, outcome)
            if outcome.status is PredictionStatus.COMPLETED and request.store is not None:
                return await store_on_sight(self._storer, request.store, outcome)
            return outcome
        crash_point("while_waiting", request.prediction_id)
        raise _pending(request, prediction.status, elapsed, attempt, delay)


def _pending(
    request: WaitRequest, status: str, elapsed: float, attempt: int, delay: float
) -> ApplicationError:
    """The benign failure whose ``next_retry_delay`` is the next poll (retries are the loop)."""
    return ApplicationError(
        f"prediction {request.prediction_id} is {status} after {elapsed:.0f} s "
        f"(poll {attempt}); next poll in {delay:.1f} s",
        type=FailureType.PREDICTION_PENDING,
        category=ApplicationErrorCategory.BENIGN,
        next_retry_delay=timedelta(seconds=delay),
    )


async def store_on_sight(
    storer: OutputStorer, store: StoreRequest, outcome: PredictionOutcome
) -> PredictionOutcome:
    """Keep the outputs now, in the attempt that saw them; a transient failure raises (retry)."""
    request = store.model_copy(
        update={"prediction_id": outcome.prediction_id, "outputs": outcome.outputs}
    )
    try:
        stored = await storer.store(request)
    except ApplicationError as exc:
        if not exc.non_retryable:
            raise
        return outcome.model_copy(update={"store_error": exc.message})
    return outcome.model_copy(update={"stored": stored})
