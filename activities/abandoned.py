"""The follow-up of a run that ended before charging: account for what the provider will bill.

WaveSpeed cannot cancel a prediction, so one still running when its run is cancelled finishes
and is billed later. Which predictions exist comes from the durable ``submissions`` record, not
from workflow memory: that includes a POST still in flight when the cancel arrived, and one whose
answer never came (matched against the provider's list the way a retried submit does). Each is
watched to its end and what the provider bills is recorded once (the event key is the
prediction id, so a repeated sweep never counts twice).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio import activity

from activities.resources import StudioResources
from activities.submit import RECONCILE_LOOKBACK, matching_predictions
from contracts.maintenance import AbandonedRequest, AbandonedSweep
from ledger.submissions import SubmissionState
from providers.wavespeed.errors import WaveSpeedError

ENDED_UNBILLED = frozenset({"timeout", "cancelled"})
"""Ends the provider does not bill; ``failed`` is billed only where the provider bills failures."""


class AbandonedActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources

    @activity.defn(name="sweep_abandoned")
    async def sweep_abandoned(self, request: AbandonedRequest) -> AbandonedSweep:
        """One look at every submission of the operation; records the cost of those that ended."""
        submissions = await asyncio.to_thread(
            self._r.submissions.submissions_for, request.operation_id
        )
        price = self._r.catalogue.price(request.model_id)
        billed: list[str] = []
        not_billed: list[str] = []
        nothing: list[str] = []
        pending: list[str] = []
        for sub in submissions:
            prediction_id = sub.prediction_id or await self._resolve_intent(sub)
            if prediction_id is None:
                (nothing if sub.state == "clear" else pending).append(sub.submission_id)
                continue
            status = await self._status(prediction_id)
            if status == "completed" or (
                status == "failed" and self._r.settings.provider_bills_failed
            ):
                await asyncio.to_thread(
                    self._r.ledger.record_provider_cost,
                    operation_id=request.operation_id,
                    prediction_id=prediction_id,
                    amount=price,
                    note=f"billed by WaveSpeed ({status}), not charged: the run ended first",
                )
                billed.append(prediction_id)
            elif status == "failed" or status in ENDED_UNBILLED:
                not_billed.append(prediction_id)
            else:
                pending.append(prediction_id)
        activity.logger.info(
            "abandoned predictions of %s: %d billed, %d not billed, %d pending",
            request.operation_id,
            len(billed),
            len(not_billed),
            len(pending),
        )
        return AbandonedSweep(
            billed=billed,
            not_billed=not_billed,
            nothing_created=nothing,
            pending=pending,
            cost_usd=price * len(billed),
        )

    async def _status(self, prediction_id: str) -> str:
        """The provider's status of the prediction; ``unknown`` while it cannot be read."""
        try:
            prediction = await self._r.provider.get_prediction(prediction_id)
        except WaveSpeedError as exc:
            activity.logger.warning("cannot read prediction %s: %s", prediction_id, exc)
            return "unknown"
        return prediction.status

    async def _resolve_intent(self, sub: SubmissionState) -> str | None:
        """The prediction an unanswered POST created, bound to its submission; None if none yet.

        Only once the POST can no longer be in flight (twice its timeout plus the reconcile
        grace) does an empty list prove nothing was created; the submission is then cleared.
        """
        if sub.state != "intent":
            return None
        try:
            candidates = await matching_predictions(
                self._r.provider, sub.model_path, sub.body, sub.intent_at - RECONCILE_LOOKBACK
            )
        except WaveSpeedError as exc:
            activity.logger.warning("cannot list predictions for %s: %s", sub.submission_id, exc)
            return None
        books = self._r.submissions
        claimed = await asyncio.to_thread(books.claimed_predictions, [p.id for p in candidates])
        for prediction in candidates:
            if prediction.id in claimed:
                continue
            if await asyncio.to_thread(
                books.accept_submission, sub.submission_id, prediction.id, reconciled=True
            ):
                return prediction.id
        settings = self._r.settings
        window = 2 * (
            settings.submit_timeout_seconds + float(settings.reconcile_grace_seconds or 0)
        )
        if datetime.now(UTC) - sub.intent_at > timedelta(seconds=window):
            await asyncio.to_thread(books.mark_submit_clear, sub.submission_id)
            # A late answer may have bound it meanwhile: read the record again.
            again = await asyncio.to_thread(books.submission, sub.submission_id)
            return again.prediction_id if again else None
        return None
