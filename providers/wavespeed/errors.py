"""Typed WaveSpeed failures: what happened, and whether trying again can help.

``retryable`` is about the *same call*: a rate-limited or transient poll may be repeated; an
ambiguous submit must not be repeated blindly (it may already have created a paid prediction) and
is reconciled against WaveSpeed's prediction list instead.
"""

from __future__ import annotations

# Task error codes from WaveSpeed's docs (§1.6 of the API notes): 1xxx = fix the request,
# 5xxx = provider-side, a fresh prediction may succeed.
TASK_ERROR_NAMES: dict[int, str] = {
    1200: "Content Moderation",
    1400: "Missing Parameter",
    1401: "Invalid Parameter",
    1402: "Media Access Failed",
    1403: "Task Execution Failed",
    1405: "Task Failed",
    5000: "Internal Error",
    5003: "Service Unavailable",
    5004: "Timeout",
}


class WaveSpeedError(Exception):
    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(WaveSpeedError):
    """401: the API key is missing or wrong. Fix the worker's WAVESPEED_API_KEY."""


class InsufficientBalanceError(WaveSpeedError):
    """The WaveSpeed account cannot pay for this prediction; top up the account."""


class PermissionDeniedError(WaveSpeedError):
    """403 for another reason (role, trial restrictions)."""


class InvalidInputError(WaveSpeedError):
    """400/404/413 on submit or upload: WaveSpeed refused the request as given."""


class PredictionNotFoundError(WaveSpeedError):
    """404 on a prediction: unknown id, or deleted after WaveSpeed's 7-day retention."""


class RateLimitedError(WaveSpeedError):
    """429: too many requests for the account's tier. No prediction was created."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None, status: int = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class TransientError(WaveSpeedError):
    """5xx, timeout or broken connection: the same call may succeed later."""

    retryable = True

    def __init__(
        self, message: str, *, status: int | None = None, request_sent: bool = True
    ) -> None:
        super().__init__(message, status=status)
        self.request_sent = request_sent
        """False only when the request provably never reached WaveSpeed (connect failed)."""


class AmbiguousSubmitError(TransientError):
    """The paid POST may or may not have created a prediction; reconcile before resubmitting."""


class PredictionFailedError(WaveSpeedError):
    """WaveSpeed ran the prediction and it ended failed (or timeout/cancelled)."""

    def __init__(
        self, prediction_id: str, code: int | None, error: str, status: str = "failed"
    ) -> None:
        name = TASK_ERROR_NAMES.get(code or 0, "Unknown")
        super().__init__(
            f"WaveSpeed prediction {prediction_id} {status} with code {code} ({name}): {error or 'no message'}"
        )
        self.prediction_id = prediction_id
        self.code = code
        self.error = error
        self.prediction_status = status

    @property
    def provider_retryable(self) -> bool:
        """5xxx codes are WaveSpeed-side; a fresh prediction may succeed (at a new cost)."""
        return self.code is not None and 5000 <= self.code < 6000


class ContentModerationError(PredictionFailedError):
    """Code 1200: the input or output was blocked by moderation. Change the input."""


def prediction_failure(
    prediction_id: str, code: int | None, error: str, status: str
) -> PredictionFailedError:
    cls = ContentModerationError if code == 1200 else PredictionFailedError
    return cls(prediction_id, code, error, status)
