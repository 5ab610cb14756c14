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

from activities.failures import FailureType, from_provider_error
from activities.resources import StudioResources
from providers.wavespeed.errors import (
    AmbiguousSubmitError,
    RateLimitedError,
    TransientError,
    WaveSpeedError,
)
from providers.wavespeed.wire import Prediction
from studio.chaos import crash_point
from studio.contracts import Submission, SubmitRequest
from studio.ledger.submissions import SubmissionState

RECONCILE_LOOKBACK = timedelta(minutes=2)
RECONCILE_MAX_PAGES = 10


class SubmitActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources

    @activity.defn(name="submit_prediction")
    async def submit_prediction(self, request: SubmitRequest) -> Submission:
        ledger = self._r.submissions
        state = await asyncio.to_thread(
            ledger.begin_submission,
            submission_id=request.submission_id,
            operation_id=request.operation_id,
            user_id=request.user_id,
            model_path=request.model_path,
            body=request.body,
        )
        if state.prediction_id:
            return _submission(request, state.prediction_id, state.intent_at, reconciled=False)
        if state.state == "intent":
            found = await self._reconcile(request, state)
            if found is not None:
                return found
            await asyncio.to_thread(ledger.mark_submit_intent, request.submission_id)
        crash_point("before_submit", request.submission_id)
        try:
            prediction = await self._r.provider.submit(
                request.model_path, request.body, webhook_url=self._webhook_url(request)
            )
        except AmbiguousSubmitError as exc:
            # Intent stays open: the next attempt reconciles before it may POST again.
            raise ApplicationError(
                f"{exc}; will look for it in WaveSpeed's prediction list before resubmitting",
                type=FailureType.AMBIGUOUS_SUBMIT,
                next_retry_delay=timedelta(seconds=1),
            ) from None
        except WaveSpeedError as exc:
            if (
                isinstance(exc, RateLimitedError)
                or (isinstance(exc, TransientError) and not exc.request_sent)
                or not exc.retryable
            ):
                await asyncio.to_thread(ledger.mark_submit_clear, request.submission_id)
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
        return _submission(
            request, prediction.id, prediction.created_at or datetime.now(UTC), False
        )

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
        matches: list[Prediction] = []
        for page in range(1, RECONCILE_MAX_PAGES + 1):
            result = await self._r.provider.list_predictions(
                model=request.model_path,
                created_after=since,
                include_inputs=True,
                page=page,
                page_size=100,
            )
            matches.extend(
                p
                for p in result.items
                if p.model in ("", request.model_path) and _same_input(p.input, request.body)
            )
            if len(result.items) < 100:
                break
        return sorted(
            matches, key=lambda p: (p.created_at or datetime.min.replace(tzinfo=UTC), p.id)
        )

    def _webhook_url(self, request: SubmitRequest) -> str | None:
        base = self._r.settings.webhook_public_url
        if not base:
            return None
        return f"{base.rstrip('/')}/webhooks/wavespeed"


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
