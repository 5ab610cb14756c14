"""Provider-neutral failures: what happened, and whether trying again can help.

Every adapter (WaveSpeed, Stability, ...) raises these, so activities branch on one hierarchy.
``retryable`` is about the *same call*. ``request_sent`` says whether the request may have reached
the provider: only a request that provably never left us (connect refused) or that the provider
answered with a refusal proves that nothing ran and nothing was billed.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base of provider errors; ``retryable`` says whether the same call may succeed later."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(ProviderError):
    """401: the API key is missing or wrong. Fix the worker's key for this provider."""


class InsufficientBalanceError(ProviderError):
    """The provider account cannot pay for this call; top up the account."""


class PermissionDeniedError(ProviderError):
    """403 for another reason (role, trial restrictions)."""


class InvalidInputError(ProviderError):
    """400/404/413/422 on submit or upload: the provider refused the request as given."""


class ContentRefusedError(InvalidInputError):
    """The provider's moderation refused the request before running it (Stability's 403
    ``content_moderation``): nothing was charged, and another provider must not be tried."""


class PredictionNotFoundError(ProviderError):
    """404 on a prediction or result: unknown id, or deleted after the provider's retention."""


class RateLimitedError(ProviderError):
    """429: too many requests for the account. Nothing was created."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None, status: int = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class TransientError(ProviderError):
    """5xx, timeout or broken connection: the same call may succeed later."""

    retryable = True

    def __init__(
        self, message: str, *, status: int | None = None, request_sent: bool = True
    ) -> None:
        super().__init__(message, status=status)
        self.request_sent = request_sent
        """False when the request provably did not run: connect failed, or the provider answered
        that it did not accept it (a 5xx from a provider that bills no failed call)."""


class AmbiguousSubmitError(TransientError):
    """The paid POST may or may not have run (and been billed); never repeat it blindly."""
