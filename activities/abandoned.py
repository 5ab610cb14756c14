"""The follow-up of a run that ended before charging: account for what the provider will bill.

WaveSpeed cannot cancel a prediction, so one still running when its run is cancelled finishes
and is billed later. Which predictions exist comes from the durable ``submissions`` record, not
from workflow memory: that includes a POST still in flight when the cancel arrived, and one whose
answer never came (matched against the provider's list the way a retried submit does). Each is
watched to its end and what the provider bills is recorded once (the event key is the
prediction id, so a repeated sweep never counts twice).

Each submission is asked about at the provider that ran it (its record names it): Stability's
asynchronous jobs at Stability. A synchronous provider's answer was the image itself, so an
accepted call was billed; an unanswered one, or one at a provider that keeps no list, is the
possible cost the paid call itself records (same event key: never counted twice).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from temporalio import activity

from activities.resources import StudioResources
from activities.submit import RECONCILE_LOOKBACK, matching_predictions
from contracts.maintenance import AbandonedRequest, AbandonedSweep
from ledger.rows import UNANSWERED
from ledger.submissions import SubmissionState
from ledger.values import path_provider
from providers.catalogue import ModelSpec
from providers.errors import ProviderError

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
        billed: list[str] = []
        not_billed: list[str] = []
        nothing: list[str] = []
        pending: list[str] = []
        cost = Decimal(0)
        for sub in submissions:
            provider, spec = self._ran_by(sub)
            price = spec.price_usd if spec else self._r.catalogue.price(request.model_id)
            prediction_id = sub.prediction_id or await self._resolve_intent(sub, provider)
            if prediction_id is None:
                (nothing if sub.state == "clear" else pending).append(sub.submission_id)
                continue
            if (spec is not None and spec.synchronous) or prediction_id.startswith(UNANSWERED):
                # The image was the answer (billed), or the POST went unanswered (possible
                # cost, the paid call's own rule): nothing to ask the provider.
                status = "completed"
            else:
                status = await self._status(provider, prediction_id)
            if status == "completed" or (
                status == "failed" and self._r.settings.provider_bills_failed
            ):
                await self._record(request, prediction_id, price, f"{provider} ({status})")
                billed.append(prediction_id)
                cost += price
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
            cost_usd=cost,
        )

    def _ran_by(self, sub: SubmissionState) -> tuple[str, ModelSpec | None]:
        """The provider the submission went to (its record says) and the catalogued model."""
        provider = path_provider(sub.model_path)
        path = sub.model_path.removeprefix(f"{provider}:")
        spec = next(
            (m for m in self._r.catalogue.models if m.provider == provider and m.path == path),
            None,
        )
        return provider, spec

    def _lists(self, provider: str) -> bool:
        """Whether the provider keeps a job list (so an unanswered POST can be resolved)."""
        try:
            return self._r.provider_for(provider).lists_predictions
        except LookupError:  # no key for it on this worker: nothing can be asked
            return False

    async def _record(
        self, request: AbandonedRequest, prediction_id: str, price: Decimal, how: str
    ) -> None:
        await asyncio.to_thread(
            self._r.ledger.record_provider_cost,
            operation_id=request.operation_id,
            prediction_id=prediction_id,
            amount=price,
            note=f"billed by {how}, not charged: the run ended first"[:500],
        )

    async def _status(self, provider: str, prediction_id: str) -> str:
        """The provider's status of the prediction; ``unknown`` while it cannot be read."""
        try:
            prediction = await self._r.provider_for(provider).get_prediction(prediction_id)
        except (ProviderError, LookupError) as exc:
            activity.logger.warning("cannot read prediction %s: %s", prediction_id, exc)
            return "unknown"
        return prediction.status

    async def _resolve_intent(self, sub: SubmissionState, provider: str) -> str | None:
        """The prediction an unanswered POST created, bound to its submission; None if none yet.

        Only once the POST can no longer be in flight (twice its timeout plus the reconcile
        grace) does an empty list prove nothing was created; the submission is then cleared.
        A provider without a list (Stability) or without a job id (a synchronous call) cannot
        prove it: past that time the answer is the possible-cost key the paid call itself uses.
        """
        if sub.state != "intent":
            return None
        if self._lists(provider):
            found = await self._listed(sub)
            if found is not None:
                return found
        books = self._r.submissions
        settings = self._r.settings
        window = 2 * (
            settings.submit_timeout_seconds + float(settings.reconcile_grace_seconds or 0)
        )
        if datetime.now(UTC) - sub.intent_at <= timedelta(seconds=window):
            return None
        if not self._lists(provider):
            again = await asyncio.to_thread(books.submission, sub.submission_id)
            bound = again.prediction_id if again else None
            return bound or f"{UNANSWERED}{sub.submission_id}"[:120]
        await asyncio.to_thread(books.mark_submit_clear, sub.submission_id)
        # A late answer may have bound it meanwhile: read the record again.
        again = await asyncio.to_thread(books.submission, sub.submission_id)
        return again.prediction_id if again else None

    async def _listed(self, sub: SubmissionState) -> str | None:
        """The listed prediction that matches the submission's body, bound to it; None if none."""
        try:
            candidates = await matching_predictions(
                self._r.provider, sub.model_path, sub.body, sub.intent_at - RECONCILE_LOOKBACK
            )
        except ProviderError as exc:
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
        return None
