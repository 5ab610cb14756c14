"""The paid call of a synchronous provider: the image comes back in the POST's answer.

There is no job id, so nothing can be reconciled afterwards. The rule (docs/providers.md): a POST
that was sent and got no answer (read timeout, reset, a worker that died mid-call) may have been
billed. It is recorded in the ledger as possible provider cost, never charged to the user, and
never repeated on the same provider: the intent written before the POST stays, so every later
attempt of this submission sees it and stops. A provider that answered "not accepted" (5xx,
429, connect refused) ran nothing: retried a few times, then ``ProviderDown`` lets a route fall
back. Moderation, invalid input and an empty account are refused, never retried.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities import metrics
from activities.resources import StudioResources
from blobs.media import MediaError
from contracts.errors import OwnershipConflictError
from contracts.failures import FailureType
from contracts.operation import (
    BlobRef,
    PredictionOutcome,
    PredictionStatus,
    StoredOutput,
    Submission,
    SubmitRequest,
)
from ledger.values import submission_path
from providers.errors import (
    AmbiguousSubmitError,
    ProviderError,
    RateLimitedError,
    TransientError,
)

FALL_BACK_AFTER_ATTEMPTS = 3
"""Attempts that provably ran nothing before a route moves on to its next entry."""


class InlineActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources

    @activity.defn(name="run_inline_prediction")
    async def run_inline_prediction(self, request: SubmitRequest) -> Submission:
        """One synchronous paid call, its image stored before the answer is recorded."""
        try:
            state = await asyncio.to_thread(
                self._r.submissions.begin_submission,
                submission_id=request.submission_id,
                operation_id=request.operation_id,
                user_id=request.user_id,
                model_path=submission_path(request.provider, request.model_path),
                body=request.body,
            )
        except OwnershipConflictError as exc:
            raise ApplicationError(
                str(exc), type=FailureType.OWNERSHIP_CONFLICT, non_retryable=True
            ) from None
        if state.prediction_id:
            return self._delivered(request, state.prediction_id)  # stored by an earlier attempt
        if state.state == "intent":
            raise await unanswered(self._r, request, "an earlier attempt sent it and saw no answer")
        provider = self._r.inline.get(request.provider)
        if provider is None:
            raise down(request, f"this worker has no key for {request.provider}", force=True)
        body, files = await asyncio.to_thread(split_files, self._r, request.body)
        try:
            with metrics.provider_call("submit"):
                image = await provider.generate(request.model_path, body, files)
        except AmbiguousSubmitError as exc:
            metrics.provider_error("submit", exc)
            raise await unanswered(self._r, request, str(exc)) from None
        except ProviderError as exc:
            metrics.provider_error("submit", exc)
            await asyncio.to_thread(self._r.submissions.mark_submit_clear, request.submission_id)
            raise refusal(request, exc) from None
        try:
            ref = await asyncio.to_thread(
                self._r.blobs.put_bytes, image.content, request.output_kind
            )
        except MediaError as exc:
            raise await unanswered(self._r, request, f"the answer is not an image: {exc}") from None
        digest = hashlib.sha256(request.submission_id.encode()).hexdigest()[:16]
        prediction_id = f"{request.provider}-{ref.sha256}-{digest}"
        await asyncio.to_thread(
            self._r.submissions.accept_submission, request.submission_id, prediction_id
        )
        activity.logger.info(
            "%s answered %s inline (%s)",
            request.provider,
            request.submission_id,
            image.finish_reason,
        )
        return self._delivered(request, prediction_id, ref, image.finish_reason)

    def _delivered(
        self,
        request: SubmitRequest,
        prediction_id: str,
        ref: BlobRef | None = None,
        finish_reason: str = "SUCCESS",
    ) -> Submission:
        """The submission with its outcome: completed, the output already in the blob store."""
        ref = ref or self._r.blobs.get(prediction_id.split("-")[1])
        outcome = PredictionOutcome(
            prediction_id=prediction_id,
            status=PredictionStatus.COMPLETED,
            has_nsfw_contents=[finish_reason == "CONTENT_FILTERED"],
            stored=[StoredOutput(kind=request.output_kind, blob=ref)],
        )
        return Submission(
            submission_id=request.submission_id,
            prediction_id=prediction_id,
            submitted_at=activity.info().current_attempt_scheduled_time,
            looked=True,
            outcome=outcome,
        )


def split_files(
    resources: StudioResources, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The body without its images, and the images' bytes by field (multipart providers)."""
    rest: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    for name, value in body.items():
        if isinstance(value, dict) and "sha256" in value:
            files[name] = resources.blobs.read_bytes(BlobRef.model_validate(value))
        else:
            rest[name] = value
    return rest, files


async def unanswered(
    resources: StudioResources, request: SubmitRequest, why: str
) -> ApplicationError:
    """Record the possible provider cost of an unanswered POST; the error ends this entry."""
    price = request.price_usd or Decimal("0")
    await asyncio.to_thread(
        resources.ledger.record_provider_cost,
        operation_id=request.operation_id,
        prediction_id=f"unanswered:{request.submission_id}"[:120],
        amount=price,
        note=f"possible cost: {request.provider} {request.model_path} sent, no answer ({why})"[
            :500
        ],
    )
    return ApplicationError(
        f"{request.provider} may have run {request.model_path} and billed it ({why}); recorded as "
        "possible provider cost, not charged, not repeated on this provider",
        type=FailureType.OUTCOME_UNKNOWN,
        non_retryable=True,
    )


def refusal(request: SubmitRequest, exc: ProviderError) -> ApplicationError:
    """A provider's answer that ran nothing: retry, fall back (after a bound) or refuse."""
    if isinstance(exc, RateLimitedError) or (
        isinstance(exc, TransientError) and not exc.request_sent
    ):
        delay = exc.retry_after if isinstance(exc, RateLimitedError) else None
        return down(request, str(exc), delay=delay)
    return ApplicationError(
        str(exc),
        {"kind": type(exc).__name__, "status": exc.status},
        type=FailureType.PROVIDER_REJECTED,
        non_retryable=True,
    )


def down(
    request: SubmitRequest, why: str, *, delay: float | None = None, force: bool = False
) -> ApplicationError:
    """Nothing ran: try the same provider again, or (bounded, with a fallback) give up on it."""
    attempt = activity.info().attempt if activity.in_activity() else 1
    if request.may_fall_back and (force or attempt >= FALL_BACK_AFTER_ATTEMPTS):
        return ApplicationError(
            f"{request.provider} ran nothing after {attempt} attempt(s): {why}",
            type=FailureType.PROVIDER_DOWN,
            non_retryable=True,
        )
    return ApplicationError(
        why,
        type=FailureType.RATE_LIMITED if delay is not None else FailureType.PROVIDER_UNAVAILABLE,
        next_retry_delay=timedelta(seconds=delay or 1.0),
        category=ApplicationErrorCategory.BENIGN,
    )
