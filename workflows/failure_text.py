"""Failure messages a person can read, from the exceptions Temporal hands a workflow."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, TimeoutError


def failure_message(exc: BaseException) -> str:
    """The innermost human message of an activity or child-workflow failure."""
    while isinstance(exc, (ActivityError, ChildWorkflowError)) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, ApplicationError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return f"timed out ({exc.type.name.lower() if exc.type else 'timeout'})"
    return str(exc) or type(exc).__name__
