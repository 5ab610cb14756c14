"""Errors a caller can act on. Each names the field or the limit that caused it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One bad field: where it is, what is wrong, and what would be accepted."""

    field: str
    """Dotted path of the field, e.g. ``inputs.size`` or ``steps.upscale.model``."""
    message: str
    allowed: str | None = None
    """What the field accepts, e.g. ``one of 2k, 4k, 8k``."""

    def __str__(self) -> str:
        suffix = f" (allowed: {self.allowed})" if self.allowed else ""
        return f"{self.field}: {self.message}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON: ``field``, ``message`` and ``allowed``."""
        return {"field": self.field, "message": self.message, "allowed": self.allowed}


class StudioError(Exception):
    """Base class of every error the engine raises on purpose."""

    error_type = "StudioError"

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON: its ``error`` type and ``message``."""
        return {"error": self.error_type, "message": str(self)}


class InvalidRequestError(StudioError, ValueError):
    """The request cannot run as given; nothing was reserved or paid."""

    error_type = "InvalidRequest"

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        self.errors = list(errors or [])
        details = "; ".join(str(e) for e in self.errors)
        super().__init__(f"{message}: {details}" if details else message)
        self.summary = message

    @property
    def fields(self) -> list[str]:
        """The dotted names of the bad fields, in the order they were found."""
        return [e.field for e in self.errors]

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON, with one entry per bad field under ``errors``."""
        return {
            "error": self.error_type,
            "message": str(self),
            "errors": [e.to_dict() for e in self.errors],
        }


class QuotaExceededError(StudioError):
    """Pre-flight refused the operation: the plan's limit or cost cap would be exceeded.

    ``detail`` has the seed system's 429 shape: ``error``, ``message``, ``provider``, ``usage_info``.
    """

    error_type = "QuotaExceeded"

    def __init__(self, detail: dict[str, Any]) -> None:
        self.detail = detail
        super().__init__(detail.get("message", "quota exceeded"))

    def to_dict(self) -> dict[str, Any]:
        """The refusal in the seed system's 429 shape (a copy of ``detail``)."""
        return dict(self.detail)


class OperationFailedError(StudioError):
    """The operation ran and failed; any reservation was released and nothing was charged."""

    error_type = "OperationFailed"

    def __init__(
        self,
        message: str,
        *,
        failure_type: str | None = None,
        provider_code: int | None = None,
        workflow_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.failure_type = failure_type
        self.provider_code = provider_code
        self.workflow_id = workflow_id

    def to_dict(self) -> dict[str, Any]:
        """The failure as JSON: its type, message, provider code and workflow id."""
        return {
            "error": self.failure_type or self.error_type,
            "message": str(self),
            "provider_code": self.provider_code,
            "workflow_id": self.workflow_id,
        }


class DecisionRefusedError(StudioError):
    """A gate decision the run refused: not an approver, nothing waiting, or already decided.

    Nothing changed; the message says why and who or what could decide instead.
    """

    error_type = "DecisionRefused"

    def __init__(self, message: str, *, pipeline_id: str | None = None) -> None:
        super().__init__(message)
        self.pipeline_id = pipeline_id


class IdempotencyKeyReusedError(StudioError):
    """An idempotency key came back with a different request (or from another caller).

    A key names one request of one user: the same key and the same body give the same run;
    anything else is refused (HTTP 409) rather than answered with a run the caller did not ask for.
    """

    error_type = "idempotency_key_reused"

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class OwnershipConflictError(StudioError):
    """A ledger row for this id belongs to another user or another request: never reused."""

    error_type = "ownership_conflict"
