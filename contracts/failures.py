"""Stable names of the failures activities raise (Temporal ``ApplicationError.type``).

Workflows and the client API branch on these names; the message is what a person reads in the
Temporal UI. Renaming one changes how running workflows react: add, don't rename.
"""

from __future__ import annotations

from typing import Final


class FailureType:
    """Plain string constants (not an enum): they go into ``ApplicationError.type`` as is."""

    INVALID_REQUEST: Final = "InvalidRequest"
    QUOTA_EXCEEDED: Final = "QuotaExceeded"
    PROVIDER_REJECTED: Final = "ProviderRejected"
    PREDICTION_FAILED: Final = "PredictionFailed"
    PREDICTION_LOST: Final = "PredictionLost"
    PREDICTION_PENDING: Final = "PredictionPending"
    OUTPUT_INVALID: Final = "OutputInvalid"
    OUTPUT_EXPIRED: Final = "OutputExpired"
    RATE_LIMITED: Final = "RateLimited"
    PROVIDER_UNAVAILABLE: Final = "ProviderUnavailable"
    AMBIGUOUS_SUBMIT: Final = "AmbiguousSubmit"
    RECONCILING: Final = "Reconciling"
    OPERATION_FAILED: Final = "OperationFailed"
    OWNERSHIP_CONFLICT: Final = "OwnershipConflict"
    """A ledger row under this operation id belongs to another user or request (never reused)."""
    PROVIDER_DOWN: Final = "ProviderDown"
    """The provider provably ran nothing (down before accepting, rate limited past a bound):
    a route may fall back to its next entry."""
    OUTCOME_UNKNOWN: Final = "ProviderOutcomeUnknown"
    """A POST went unanswered at a provider that cannot be asked afterwards: possible provider
    cost, never charged to the user, never repeated there, no fallback."""


NON_RETRYABLE: list[str] = [
    FailureType.INVALID_REQUEST,
    FailureType.QUOTA_EXCEEDED,
    FailureType.PROVIDER_REJECTED,
    FailureType.PREDICTION_LOST,
    FailureType.OUTPUT_EXPIRED,
    FailureType.OWNERSHIP_CONFLICT,
    FailureType.PROVIDER_DOWN,
    FailureType.OUTCOME_UNKNOWN,
]
"""Failures no retry can mend: the request, the plan or the provider said no for good."""

PREFLIGHT_REFUSALS = frozenset(
    {FailureType.INVALID_REQUEST, FailureType.QUOTA_EXCEEDED, FailureType.OWNERSHIP_CONFLICT}
)
"""Refusals before any paid call: the run ends at once, nothing was spent."""
