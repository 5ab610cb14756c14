"""How an operation waits for a prediction: polling by activity retry, cut short by webhooks.

Signals only hint; the wait activity asks the provider and its answer is the outcome. With webhooks
on, the run waits on a timer (no activity, no poll) for the hint and polls only after the fallback
time; without them, the submit itself looks once, so a fast job needs no wait activity at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.wait import WaitActivities
    from contracts.operation import PredictionOutcome, PreparedOperation, Submission, WaitRequest
    from workflows import policies
    from workflows.operation_parts import store_request

LOOKS_FIRST_PATCH = "looks-after-submit-and-waits-for-webhooks-on-a-timer"
MAX_EARLY_HINTS = 8
"""Hints for predictions this run does not know yet (a webhook can beat the submit's answer to
the workflow); bounded, so a flood of signals cannot grow the run's state."""


class PredictionWaits:
    """The hints a run received and the way it waits (workflow state: deterministic)."""

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._hints: set[str] = set()
        self._early_hints: set[str] = set()
        self._looks_first = False

    def choose_version(self) -> None:
        """Runs started before the look-first change keep waiting the way they began."""
        self._looks_first = workflow.patched(LOOKS_FIRST_PATCH)

    def hint(self, prediction_id: str) -> None:
        """A verified webhook named this prediction: one hint per prediction counts; unknown ids
        are kept (bounded) in case the webhook beat the submit's answer to the workflow."""
        if prediction_id in self._known:
            self._hints.add(prediction_id)
        elif len(self._early_hints) < MAX_EARLY_HINTS:
            self._early_hints.add(prediction_id)

    def own(self, prediction_id: str) -> None:
        """The run's submit created this prediction: its hints count from now on (and before)."""
        self._known.add(prediction_id)
        if prediction_id in self._early_hints:
            self._hints.add(prediction_id)

    def looks_after_submit(self, prepared: PreparedOperation) -> bool:
        """Polling runs look once inside the submit (a fast job ends there); with webhooks the
        run waits for the webhook instead, so a job costs one GET, made after the webhook."""
        return self._looks_first and prepared.poll.webhook_fallback_seconds is None

    async def wait(
        self, prepared: PreparedOperation, submission: Submission, attempt_timeout: timedelta
    ) -> PredictionOutcome:
        """Poll until the provider says the prediction ended; a webhook hint makes it look now.

        The hint only cuts the wait short: the outcome always comes from the provider (the wait
        activity's GET), never from the signal. With webhooks on, the run first waits on a timer
        (no activity, no poll) for the hint; polling takes over after the fallback time.
        """
        prediction_id = submission.prediction_id
        fallback = prepared.poll.webhook_fallback_seconds
        if self._looks_first and fallback is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: prediction_id in self._hints,
                    timeout=timedelta(seconds=fallback),
                    timeout_summary=f"webhook for {prediction_id}, else poll",
                )
            if prediction_id in self._hints:
                return await self._start_polling(
                    prepared, submission, attempt_timeout, after_hint=True
                )
        polling = self._start_polling(prepared, submission, attempt_timeout)
        hinted = asyncio.create_task(workflow.wait_condition(lambda: prediction_id in self._hints))
        try:
            await workflow.wait([polling, hinted], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            polling.cancel()  # the run is being cancelled: stop polling too
            polling.add_done_callback(_consume_outcome)  # no "Task exception was never retrieved"
            raise
        finally:
            hinted.cancel()
        if polling.done():
            return polling.result()
        polling.cancel()  # look now rather than at the next scheduled poll
        with contextlib.suppress(BaseException):
            await polling
        return await self._start_polling(prepared, submission, attempt_timeout, after_hint=True)

    def _start_polling(
        self,
        prepared: PreparedOperation,
        submission: Submission,
        attempt_timeout: timedelta,
        *,
        after_hint: bool = False,
    ) -> asyncio.Task[PredictionOutcome]:
        """The wait activity: each attempt is one GET, its first right away (then by schedule)."""
        prediction_id = submission.prediction_id
        wait = policies.wait_policy(
            attempt_timeout, timedelta(seconds=prepared.poll.timeout_seconds)
        )
        return asyncio.create_task(
            workflow.execute_activity_method(
                WaitActivities.wait_for_prediction,
                WaitRequest(
                    prediction_id=prediction_id,
                    submitted_at=submission.submitted_at,
                    poll=prepared.poll,
                    operation_id=prepared.request.operation_id,
                    store=store_request(prepared, prediction_id, []),
                    after_hint=after_hint,
                    looked=submission.looked and not after_hint,
                    provider=prepared.provider,
                ),
                summary=f"wait for prediction {prediction_id}",
                start_to_close_timeout=wait.start_to_close,
                schedule_to_close_timeout=wait.schedule_to_close,
                retry_policy=wait.retry,
            )
        )


def _consume_outcome(task: asyncio.Task[PredictionOutcome]) -> None:
    """Read the end of a poll abandoned by a cancel (nothing is done with it; no command)."""
    if not task.cancelled():
        task.exception()
