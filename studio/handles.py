"""Handles to runs that were started: wait for the result, watch progress, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from temporalio.client import WorkflowHandle

from contracts.operation import OperationProgress, OperationRequest, OperationResult
from ledger.run_records import RunRecords
from studio.events import RunEvent, follow
from studio.outcomes import run_result
from workflows.operation import ImageOperationWorkflow


@dataclass
class OperationHandle:
    """A running (or finished) operation: wait for it, watch it, cancel it."""

    handle: WorkflowHandle[Any, OperationResult]
    request: OperationRequest | None
    """What was asked for (``None`` for a handle reattached by id: ``Studio.operation``)."""
    ui_url: str
    """The run's page in the Temporal UI."""
    records: RunRecords | None = None
    """Where the run's ending is kept after Temporal's retention forgets it."""

    @property
    def workflow_id(self) -> str:
        """The run's id (also the operation id)."""
        return self.handle.id

    @property
    def id(self) -> str:
        """The run's id (the same as ``workflow_id``)."""
        return self.handle.id

    async def result(self, timeout: float | None = None) -> OperationResult:
        """Wait for the stored result, at most ``timeout`` seconds (the run goes on after that).

        Raises:
            TimeoutError: the run had not ended within ``timeout``.
            InvalidRequestError: pre-flight refused the request (nothing was reserved).
            QuotaExceededError: the plan or budget would be exceeded.
            OperationFailedError: the run failed or was cancelled (nothing was charged).
        """
        return await run_result(self.handle, self.records, "operation", OperationResult, timeout)

    async def progress(self) -> OperationProgress:
        """The run's phase, predictions and cost so far (a query: leaves no history)."""
        return await self.handle.query(ImageOperationWorkflow.progress)

    def events(self, *, last_event_id: str | None = None) -> AsyncIterator[RunEvent]:
        """``ProgressEvent``s as the run moves on, ending with a ``ResultEvent`` or an
        ``ErrorEvent`` (``studio.events``; the CLI and the SSE stream use the same)."""
        return follow(self.handle, self.progress, last_event_id=last_event_id)

    async def cancel(self) -> None:
        """Ask the run to stop; its reservation is released and unfinished work is not charged."""
        await self.handle.cancel()
