"""Turn our typed errors into Temporal ``ApplicationError``s with stable ``type`` names.

The type is what workflows and the client API branch on; the message is what a person reads in
the Temporal UI, so it says what happened and what to do.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from contracts.errors import InvalidRequestError, OwnershipConflictError, QuotaExceededError
from contracts.failures import FailureType
from providers.wavespeed.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    InsufficientBalanceError,
    InvalidInputError,
    PermissionDeniedError,
    PredictionNotFoundError,
    RateLimitedError,
    TransientError,
    WaveSpeedError,
)


def invalid_request(exc: InvalidRequestError) -> ApplicationError:
    return ApplicationError(
        str(exc), exc.to_dict(), type=FailureType.INVALID_REQUEST, non_retryable=True
    )


def ownership_conflict(exc: OwnershipConflictError) -> ApplicationError:
    """A ledger row of another user or request: final, and nothing of theirs is touched."""
    return ApplicationError(str(exc), type=FailureType.OWNERSHIP_CONFLICT, non_retryable=True)


def quota_exceeded(exc: QuotaExceededError) -> ApplicationError:
    return ApplicationError(
        str(exc), exc.detail, type=FailureType.QUOTA_EXCEEDED, non_retryable=True
    )


def from_provider_error(exc: WaveSpeedError, *, default_delay: float = 2.0) -> ApplicationError:
    """Map a WaveSpeed client error for a call that is safe to repeat (everything but submit)."""
    if isinstance(exc, RateLimitedError):
        return ApplicationError(
            str(exc),
            type=FailureType.RATE_LIMITED,
            next_retry_delay=timedelta(seconds=exc.retry_after or default_delay),
            category=ApplicationErrorCategory.BENIGN,
        )
    if isinstance(exc, AmbiguousSubmitError):
        return ApplicationError(str(exc), type=FailureType.AMBIGUOUS_SUBMIT)
    if isinstance(exc, TransientError):
        return ApplicationError(
            str(exc),
            type=FailureType.PROVIDER_UNAVAILABLE,
            next_retry_delay=timedelta(seconds=default_delay),
        )
    if isinstance(exc, PredictionNotFoundError):
        return ApplicationError(str(exc), type=FailureType.PREDICTION_LOST, non_retryable=True)
    if isinstance(
        exc,
        (AuthenticationError, InsufficientBalanceError, PermissionDeniedError, InvalidInputError),
    ):
        return ApplicationError(
            str(exc),
            {"kind": type(exc).__name__, "status": exc.status},
            type=FailureType.PROVIDER_REJECTED,
            non_retryable=True,
        )
    return ApplicationError(str(exc), type=FailureType.PROVIDER_UNAVAILABLE)
