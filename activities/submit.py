"""The paid call. It must never create a second prediction for the same intended submission.

Before the POST the intent is written to the ledger; after it, the prediction id. A retry that
finds an intent without an id does not know whether WaveSpeed created the prediction (the
response was lost, the worker died mid-call), so it looks for it in WaveSpeed's prediction list
(same model, same inputs, created after the intent, not already owned by another submission).
Only when the list shows nothing, after a grace period longer than the POST's own timeout, is the
POST sent again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from activities.chaos import crash_point
from activities.failures import from_provider_error, ownership_conflict
from activities.inline import down, split_files, unanswered
from activities.resources import StudioResources
from activities.store import OutputStorer
from activities.wait import count_completion, final_outcome, store_on_sight
from contracts.errors import OwnershipConflictError
from contracts.failures import FailureType
from contracts.operation import PredictionStatus, StoreRequest, Submission, SubmitRequest
from ledger.submissions import SubmissionState
from ledger.values import submission_path
from providers.base import PredictionProvider
from providers.wavespeed.errors import (
    AmbiguousSubmitError,
    RateLimitedError,
    TransientError,
    WaveSpeedError,
)
from providers.wavespeed.wire import Prediction

RECONCILE_LOOKBACK = timedelta(minutes=2)
RECONCILE_MAX_PAGES = 10
LOOK_BUDGET_SECONDS = 15.0
"""The look after the POST (a GET, and storing a finished job's outputs) gives up after this and
leaves the rest to the wait activity, well inside the submit attempt's own timeout."""


class SubmitActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources
        self._storer = OutputStorer(resources)

    @activity.defn(name="submit_prediction")
    async def submit_prediction(self, request: SubmitRequest) -> Submission:
        ledger = self._r.submissions
        try:
            state = await asyncio.to_thread(
                ledger.begin_submission,
                submission_id=request.submission_id,
                operation_id=request.operation_id,
                user_id=request.user_id,
                model_path=submission_path(request.provider, request.model_path),
                body=request.body,
            )
        except OwnershipConflictError as exc:
            raise ownership_conflict(exc) from None
        if state.prediction_id:
            return _submission(request, state.prediction_id, state.intent_at, reconciled=False)
        provider = self._r.provider_for(request.provider)
        if state.state == "intent":
            if not provider.lists_predictions:
                # No list to prove the unanswered POST created nothing: never POST again here.
                raise await unanswered(self._r, request, "an earlier attempt saw no answer")
            found = await self._reconcile(request, state)
            if found is not None:
                return found
            await asyncio.to_thread(ledger.mark_submit_intent, request.submission_id)
        body, files = request.body, None
        if request.provider != "wavespeed":
            body, files = await asyncio.to_thread(split_files, self._r, request.body)
        crash_point("before_submit", request.submission_id)
        try:
            with metrics.provider_call("submit"):
                prediction = await provider.submit(
                    request.model_path, body, webhook_url=self._webhook_url(request), files=files
                )
        except AmbiguousSubmitError as exc:
            metrics.provider_error("submit", exc)
            # Intent stays open: the next attempt reconciles before it may POST again.
            raise ApplicationError(
                f"{exc}; will look for it in WaveSpeed's prediction list before resubmitting",
                type=FailureType.AMBIGUOUS_SUBMIT,
                next_retry_delay=timedelta(seconds=1),
            ) from None
        except WaveSpeedError as exc:
            metrics.provider_error("submit", exc)
            ran_nothing = isinstance(exc, RateLimitedError) or (
                isinstance(exc, TransientError) and not exc.request_sent
            )
            if ran_nothing or not exc.retryable:
                await asyncio.to_thread(ledger.mark_submit_clear, request.submission_id)
            if ran_nothing and request.may_fall_back:
                delay = exc.retry_after if isinstance(exc, RateLimitedError) else None
                raise down(request, str(exc), delay=delay) from None
            raise from_provider_error(exc) from None

        crash_point("after_submit", request.submission_id)  # created at WaveSpeed, not yet recorded
        if not await asyncio.to_thread(
            ledger.accept_submission, request.submission_id, prediction.id
        ):
            raise ApplicationError(
                f"prediction {prediction.id} is already bound to another submission",
                type=FailureType.OPERATION_FAILED,
                non_retryable=True,
            )
        activity.logger.info("submitted %s as prediction %s", request.submission_id, prediction.id)
        submission = _submission(
            request, prediction.id, prediction.created_at or datetime.now(UTC), False
        )
        if request.look is None:
            return submission
        return await self._look_once(request.look, submission, prediction)

    async def _look_once(
        self, look: StoreRequest, submission: Submission, accepted: Prediction
    ) -> Submission:
        """One look after the paid POST, its id already recorded: a job done this fast needs no
        wait activity. Best effort: anything that goes wrong here is left to the wait activity
        (the submission is returned as is), so the paid call is never retried because of it."""
        try:
            async with asyncio.timeout(LOOK_BUDGET_SECONDS):
                return await self._look(look, submission, accepted)
        except Exception as exc:  # noqa: BLE001 - the wait activity looks again
            activity.logger.info("first look at %s failed: %s", submission.prediction_id, exc)
            return submission

    async def _look(
        self, look: StoreRequest, submission: Submission, accepted: Prediction
    ) -> Submission:
        prediction = accepted
        if final_outcome(accepted) is None:
            with metrics.provider_call("poll"):
                prediction = await self._r.provider_for(look.provider).get_prediction(
                    submission.prediction_id
                )
        outcome = final_outcome(prediction, polls=1)
        if outcome is None:
            return submission.model_copy(update={"looked": True})
        count_completion(False, outcome)
        if outcome.status is PredictionStatus.COMPLETED:
            outcome = await store_on_sight(self._storer, look, outcome)
        return submission.model_copy(update={"looked": True, "outcome": outcome})

    async def _reconcile(self, request: SubmitRequest, state: SubmissionState) -> Submission | None:
        """Find the prediction an earlier, unanswered POST created; None if provably none exists."""
        since = state.intent_at - RECONCILE_LOOKBACK
        try:
            candidates = await self._matching_predictions(request, since)
        except WaveSpeedError as exc:
            # Without the list we cannot know; never resubmit blind.
            raise ApplicationError(
                f"cannot reconcile ambiguous submit {request.submission_id}: {exc}",
                type=FailureType.RECONCILING,
                next_retry_delay=timedelta(seconds=5),
            ) from None
        claimed = await asyncio.to_thread(
            self._r.submissions.claimed_predictions, [p.id for p in candidates]
        )
        for prediction in candidates:
            if prediction.id in claimed:
                continue
            if await asyncio.to_thread(
                self._r.submissions.accept_submission,
                request.submission_id,
                prediction.id,
                reconciled=True,
            ):
                activity.logger.warning(
                    "ambiguous submit %s reconciled to existing prediction %s",
                    request.submission_id,
                    prediction.id,
                )
                return _submission(
                    request, prediction.id, prediction.created_at or state.intent_at, True
                )
        age = (datetime.now(UTC) - state.intent_at).total_seconds()
        grace = float(self._r.settings.reconcile_grace_seconds or 0)
        if age >= grace and request.may_fall_back:
            # Proved by the list: nothing was created. A route moves on instead of resubmitting.
            await asyncio.to_thread(self._r.submissions.mark_submit_clear, request.submission_id)
            raise down(request, "no prediction was created (the list shows none)", force=True)
        if age < grace:
            raise ApplicationError(
                f"ambiguous submit {request.submission_id}: no prediction found yet; "
                f"checking again before resubmitting ({grace - age:.0f} s of grace left)",
                type=FailureType.RECONCILING,
                next_retry_delay=timedelta(seconds=max(1.0, min(grace - age, 10.0))),
            )
        activity.logger.warning(
            "ambiguous submit %s created nothing after %.0f s; submitting again",
            request.submission_id,
            age,
        )
        return None

    async def _matching_predictions(
        self, request: SubmitRequest, since: datetime
    ) -> list[Prediction]:
        return await matching_predictions(self._r.provider, request.model_path, request.body, since)

    def _webhook_url(self, request: SubmitRequest) -> str | None:
        base = self._r.settings.webhook_public_url
        if not base or request.provider != "wavespeed":
            return None
        return f"{base.rstrip('/')}/webhooks/wavespeed"


async def matching_predictions(
    provider: PredictionProvider, model_path: str, body: dict[str, Any], since: datetime
) -> list[Prediction]:
    """Predictions of ``model_path`` created after ``since`` whose inputs are ``body``, oldest
    first: where an unanswered POST's prediction is looked for (a retried submit, the follow-up
    of a cancelled run)."""
    matches: list[Prediction] = []
    for page in range(1, RECONCILE_MAX_PAGES + 1):
        result = await provider.list_predictions(
            model=model_path,
            created_after=since,
            include_inputs=True,
            page=page,
            page_size=100,
        )
        matches.extend(
            p for p in result.items if p.model in ("", model_path) and _same_input(p.input, body)
        )
        if len(result.items) < 100:
            break
    return sorted(matches, key=lambda p: (p.created_at or datetime.min.replace(tzinfo=UTC), p.id))


def _same_input(remote: dict[str, Any] | None, body: dict[str, Any]) -> bool:
    """WaveSpeed echoes the inputs it received; every field we sent must be there unchanged."""
    if remote is None:
        return False
    return all(remote.get(key) == value for key, value in body.items())


def _submission(
    request: SubmitRequest, prediction_id: str, when: datetime, reconciled: bool
) -> Submission:
    return Submission(
        submission_id=request.submission_id,
        prediction_id=prediction_id,
        submitted_at=when if when.tzinfo else when.replace(tzinfo=UTC),
        reconciled=reconciled,
    )
