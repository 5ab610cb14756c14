"""Timeouts and retry policies per activity, in one place so they can be read side by side.

Each policy is a typed value; call sites pass its parts as the SDK's own keyword arguments
(``start_to_close_timeout=UPLOAD.start_to_close``...), so mypy checks every activity call against
the SDK's overloads. The paid submit is the only activity whose retries need care; the submit
activity itself makes a retry safe (it reconciles before it may POST again), so a retry policy
here cannot double-pay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.common import RetryPolicy

from contracts.failures import NON_RETRYABLE


@dataclass(frozen=True)
class ActivityPolicy:
    """How long one attempt may take, how it is retried, and (optionally) its outer limits."""

    start_to_close: timedelta
    """Limit on one attempt; a crashed worker's attempt is retried after it."""
    retry: RetryPolicy
    heartbeat: timedelta | None = None
    """Long transfers heartbeat; a silent worker is replaced after this."""
    schedule_to_close: timedelta | None = None
    """Limit on all attempts together."""


LEDGER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=NON_RETRYABLE,
)

LEDGER = ActivityPolicy(start_to_close=timedelta(seconds=60), retry=LEDGER_RETRY)
"""Reserve/settle/release: keep trying (a database restart must not lose a settlement)."""

LEDGER_LOCAL = ActivityPolicy(start_to_close=timedelta(seconds=30), retry=LEDGER_RETRY)
"""The same, run as local activities: quick database writes on the worker that runs the
workflow, without a round trip through the server. They are idempotent, so the re-run a worker
crash causes is harmless."""

LOCAL_STEP = ActivityPolicy(start_to_close=timedelta(minutes=5), retry=LEDGER_RETRY)
"""Pipeline bookkeeping and the free local steps (ranking, crops): bounded work, safe to repeat."""

UPLOAD = ActivityPolicy(
    start_to_close=timedelta(minutes=5),
    heartbeat=timedelta(minutes=2),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=8,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)

STORE = ActivityPolicy(
    start_to_close=timedelta(minutes=10),
    heartbeat=timedelta(minutes=2),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(seconds=60),
        maximum_attempts=6,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)

MAINTENANCE = ActivityPolicy(
    start_to_close=timedelta(minutes=5),
    retry=RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(minutes=1)),
)


WEBHOOK = ActivityPolicy(
    start_to_close=timedelta(seconds=30),
    schedule_to_close=timedelta(hours=24),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=10),
        non_retryable_error_types=["UnsafeWebhookUrl"],
    ),
)
"""A caller's webhook: retried with exponential backoff (1 s, 2 s, 4 s… up to 10 min apart) for
a day, the way Standard Webhooks senders do; a refused URL is not retried."""


def submit_policy(attempt_timeout: timedelta) -> ActivityPolicy:
    """The paid POST: each attempt bounded; retries reconcile first (see activities.submit)."""
    return ActivityPolicy(
        start_to_close=attempt_timeout,
        schedule_to_close=timedelta(minutes=30),
        retry=RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=30),
            non_retryable_error_types=NON_RETRYABLE,
        ),
    )


def wait_policy(attempt_timeout: timedelta, wait_timeout: timedelta) -> ActivityPolicy:
    """Polling by retry: each attempt is one GET; the activity's ``next_retry_delay`` sets the
    pace, so the retry policy's own interval only matters for unexpected errors."""
    return ActivityPolicy(
        start_to_close=attempt_timeout,
        schedule_to_close=wait_timeout,
        retry=RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=1.0,
            maximum_interval=timedelta(seconds=60),
            non_retryable_error_types=NON_RETRYABLE,
        ),
    )
