"""Map a failed workflow back to the typed error the backend can act on."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)
from temporalio.service import RPCError, RPCStatusCode

from contracts.errors import (
    DecisionRefusedError,
    FieldError,
    InvalidRequestError,
    OperationFailedError,
    QuotaExceededError,
)
from ledger.run_records import RunRecords


def failure_from_workflow(exc: WorkflowFailureError, workflow_id: str) -> Exception:
    """The caller-facing error behind a failed run.

    Args:
        exc: What ``handle.result()`` raised.
        workflow_id: The run, named in the error so it can be found in the Temporal UI.

    Returns:
        ``InvalidRequestError`` or ``QuotaExceededError`` for a pre-flight refusal, otherwise an
        ``OperationFailedError`` (cancelled, timed out, or failed with the provider's reason).
    """
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


def refusal_from_update(exc: WorkflowUpdateFailedError, pipeline_id: str) -> Exception:
    """A refused gate decision as the error the caller can act on (409 or 422 over HTTP)."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type == "InvalidRequest":
        first = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        errors = [
            FieldError(e["field"], e["message"], e.get("allowed")) for e in first.get("errors", [])
        ]
        return InvalidRequestError(cause.message.split(":")[0], errors)
    message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
    return DecisionRefusedError(message, pipeline_id=pipeline_id)


def failure_from_record(error: dict[str, Any] | None, workflow_id: str) -> Exception:
    """The caller-facing error of a failed run, rebuilt from its durable record (the same
    errors ``failure_from_workflow`` gives while Temporal still has the run)."""
    error = error or {}
    kind = str(error.get("type") or "OperationFailed")
    message = str(error.get("message") or "the run failed")
    details = error.get("details") or []
    first = details[0] if details and isinstance(details[0], dict) else {}
    if kind == "Cancelled":
        return OperationFailedError(
            "the run was cancelled; nothing was charged for unfinished work",
            failure_type="Cancelled",
            workflow_id=workflow_id,
        )
    if kind == "InvalidRequest" and first:
        errors = [
            FieldError(e["field"], e["message"], e.get("allowed")) for e in first.get("errors", [])
        ]
        return InvalidRequestError(str(first.get("summary") or message.split(":")[0]), errors)
    if kind == "QuotaExceeded" and first:
        return QuotaExceededError(first)
    codes = first.get("provider_codes", [])
    return OperationFailedError(
        message,
        failure_type=kind,
        provider_code=codes[0] if codes else None,
        workflow_id=workflow_id,
    )


def is_gone(exc: BaseException) -> bool:
    """Whether Temporal no longer knows the run (never started here, or past its retention)."""
    return isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND


def recorded_result(records: RunRecords | None, run_id: str, kind: str) -> dict[str, Any]:
    """The result JSON of an ended run from its durable record (when Temporal forgot it).

    Raises:
        LookupError: no ended record of this kind.
        OperationFailedError (or the refusal it was): the run failed.
    """
    info = records.find(run_id) if records is not None else None
    if info is None or info.kind != kind or not info.ended:
        raise LookupError(run_id)
    if info.status != "completed" or info.result is None:
        raise failure_from_record(info.error, run_id)
    return info.result


ResultT = TypeVar("ResultT", bound=BaseModel)


async def run_result(
    handle: WorkflowHandle[Any, ResultT],
    records: RunRecords | None,
    kind: str,
    model: type[ResultT],
    timeout: float | None,
) -> ResultT:
    """A run's result from Temporal, or from its durable record once Temporal forgot the run.

    Raises:
        TimeoutError: the run had not ended within ``timeout``.
        The typed error of a failed run (``failure_from_workflow`` / ``failure_from_record``).
    """
    try:
        return await asyncio.wait_for(handle.result(), timeout)
    except WorkflowFailureError as exc:
        raise failure_from_workflow(exc, handle.id) from None
    except RPCError as exc:
        if not is_gone(exc):
            raise
        try:  # past retention: the durable record answers
            data = await asyncio.to_thread(recorded_result, records, handle.id, kind)
        except LookupError:
            raise exc from None
        return model.model_validate(data)
