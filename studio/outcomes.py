"""Map a failed workflow back to the typed error the backend can act on."""

from __future__ import annotations

from temporalio.client import WorkflowFailureError
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)

from studio.errors import FieldError, InvalidRequestError, OperationFailedError, QuotaExceededError


def failure_from_workflow(exc: WorkflowFailureError, workflow_id: str) -> Exception:
    cause: BaseException | None = exc.cause
    while isinstance(cause, (ActivityError, ChildWorkflowError)) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, CancelledError):
        return OperationFailedError(
            "the run was cancelled; nothing was charged for unfinished work",
            failure_type="Cancelled",
            workflow_id=workflow_id,
        )
    if not isinstance(cause, ApplicationError):
        return OperationFailedError(str(cause or exc), workflow_id=workflow_id)
    details = list(cause.details)
    first = details[0] if details and isinstance(details[0], dict) else {}
    if cause.type == "InvalidRequest" and first:
        errors = [
            FieldError(e["field"], e["message"], e.get("allowed")) for e in first.get("errors", [])
        ]
        return InvalidRequestError(str(first.get("summary") or cause.message.split(":")[0]), errors)
    if cause.type == "QuotaExceeded" and first:
        return QuotaExceededError(first)
    codes = first.get("provider_codes", [])
    return OperationFailedError(
        cause.message,
        failure_type=cause.type,
        provider_code=codes[0] if codes else None,
        workflow_id=workflow_id,
    )
