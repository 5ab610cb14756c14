"""Timeouts and retry policies per activity, in one place so they can be read side by side.

The paid submit is the only activity whose retries need care; the submit activity itself makes a
retry safe (it reconciles before it may POST again), so a retry policy here cannot double-pay.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy

from activities.failures import NON_RETRYABLE

LEDGER = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=30),
        non_retryable_error_types=NON_RETRYABLE,
    ),
}
"""Reserve/settle/release: keep trying (a database restart must not lose a settlement)."""

LEDGER_LOCAL = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": LEDGER["retry_policy"],
}
"""The same, run as local activities: quick database writes on the worker that runs the
workflow, without a round trip through the server. They are idempotent, so the re-run a worker
crash causes is harmless."""

UPLOAD = {
    "start_to_close_timeout": timedelta(minutes=5),
    "heartbeat_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=8,
        non_retryable_error_types=NON_RETRYABLE,
    ),
}


def submit_options(attempt_timeout: timedelta) -> dict[str, Any]:
    return {
        "start_to_close_timeout": attempt_timeout,
        "schedule_to_close_timeout": timedelta(minutes=30),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=30),
            non_retryable_error_types=NON_RETRYABLE,
        ),
    }


def wait_options(attempt_timeout: timedelta, wait_timeout: timedelta) -> dict[str, Any]:
    return {
        "start_to_close_timeout": attempt_timeout,
        "schedule_to_close_timeout": wait_timeout,
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=1.0,
            maximum_interval=timedelta(seconds=60),
            non_retryable_error_types=NON_RETRYABLE,
        ),
    }


STORE = {
    "start_to_close_timeout": timedelta(minutes=10),
    "heartbeat_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(seconds=60),
        maximum_attempts=6,
        non_retryable_error_types=NON_RETRYABLE,
    ),
}
