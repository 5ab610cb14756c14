"""Typed WaveSpeed failures: what happened, and whether trying again can help.

``retryable`` is about the *same call*: a rate-limited or transient poll may be repeated; an
ambiguous submit must not be repeated blindly (it may already have created a paid prediction) and
is reconciled against WaveSpeed's prediction list instead.
"""

from __future__ import annotations

from providers.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    ContentRefusedError,
    InsufficientBalanceError,
    InvalidInputError,
    PermissionDeniedError,
    PredictionNotFoundError,
    ProviderError,
    RateLimitedError,
    TransientError,
)

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


WaveSpeedError = ProviderError
"""The neutral base under its old name (every adapter raises ``providers.errors`` types)."""

__all__ = [
    "AmbiguousSubmitError",
    "AuthenticationError",
    "ContentModerationError",
    "ContentRefusedError",
    "InsufficientBalanceError",
    "InvalidInputError",
    "PermissionDeniedError",
    "PredictionFailedError",
    "PredictionNotFoundError",
    "RateLimitedError",
    "TransientError",
    "WaveSpeedError",
    "prediction_failure",
]


class PredictionFailedError(ProviderError):
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
    """The error for a prediction that ended failed (content moderation gets its own type)."""
    cls = ContentModerationError if code == 1200 else PredictionFailedError
    return cls(prediction_id, code, error, status)
