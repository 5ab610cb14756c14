"""One way to follow a run, shared by ``handle.events()``, the CLI and the HTTP API's SSE stream.

A run's progress is a snapshot (the workflow's ``progress`` query), so events are snapshots too:
a ``progress`` event whenever the snapshot changes, one ``awaiting_approval`` event when a
pipeline gate starts waiting, and a last ``result`` or ``error`` event. The end comes from one
long poll on the run's result (no describe per tick); queries thin out while nothing changes.

Event ids are ``<seq>-<digest>[-<gate>]``: the sequence keeps counting across reconnects and the
digest names the snapshot, so a client resuming with its last id (``Last-Event-ID``) is sent
only what changed since, never the same snapshot twice.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from temporalio.client import WorkflowFailureError, WorkflowHandle

from contracts.errors import StudioError
from contracts.operation import OperationProgress, OperationResult
from contracts.pipeline import ApprovalProgress, PipelineProgress, PipelineResult, StepState
from studio.outcomes import failure_from_workflow

EventKind = Literal["progress", "awaiting_approval", "result", "error"]
Progress = OperationProgress | PipelineProgress
Result = OperationResult | PipelineResult
MIN_INTERVAL_SECONDS = 0.3
MAX_INTERVAL_SECONDS = 2.0


@dataclass(frozen=True)
class RunEvent:
    """Base of the four events; ``id`` is what SSE sends and ``Last-Event-ID`` returns."""

    run_id: str
    seq: int
    digest: str
    kind: EventKind = field(init=False)

    @property
    def id(self) -> str:
        """``<seq>-<digest>``: resumable, and never the same for two different snapshots."""
        return f"{self.seq}-{self.digest}"

    def data(self) -> dict[str, Any]:
        """The event's payload as JSON-ready data (the SSE ``data:`` line)."""
        raise NotImplementedError

    @property
    def final(self) -> bool:
        """Whether this is the last event of the run (its result or its error)."""
        return self.kind in ("result", "error")


@dataclass(frozen=True)
class ProgressEvent(RunEvent):
    """The run's progress changed (phase, step states, cost so far)."""

    progress: Progress
    kind: EventKind = field(init=False, default="progress")

    def data(self) -> dict[str, Any]:
        """The progress snapshot as JSON data."""
        return self.progress.model_dump(mode="json")


@dataclass(frozen=True)
class ApprovalEvent(RunEvent):
    """A pipeline gate started waiting for a person: what it shows and who may decide."""

    gate: str
    approval: ApprovalProgress
    kind: EventKind = field(init=False, default="awaiting_approval")

    @property
    def id(self) -> str:
        """``<seq>-<digest>-<gate>``: a resume does not announce this gate again."""
        return f"{self.seq}-{self.digest}-{self.gate}"

    def data(self) -> dict[str, Any]:
        """The pipeline, the gate and what its reviewer sees."""
        return {
            "pipeline_id": self.run_id,
            "gate": self.gate,
            "approval": self.approval.model_dump(mode="json"),
        }


@dataclass(frozen=True)
class ResultEvent(RunEvent):
    """The run succeeded: its stored result (the last event)."""

    result: Result
    kind: EventKind = field(init=False, default="result")

    def data(self) -> dict[str, Any]:
        """The run's result as JSON data."""
        return self.result.model_dump(mode="json")


@dataclass(frozen=True)
class ErrorEvent(RunEvent):
    """The run failed, was refused or cancelled: the typed error (the last event)."""

    error: StudioError
    kind: EventKind = field(init=False, default="error")

    def data(self) -> dict[str, Any]:
        """The error as JSON: ``error``, ``message`` and the fields at fault."""
        return self.error.to_dict()


@dataclass
class _Cursor:
    """Where a follower is: the last sequence number, snapshot digest and announced gates."""

    seq: int = 0
    digest: str = ""
    announced: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, last_event_id: str | None) -> _Cursor:
        parts = (last_event_id or "").strip().split("-", 2)
        if len(parts) < 2 or not parts[0].isdigit():
            return cls()
        return cls(int(parts[0]), parts[1], {parts[2]} if len(parts) == 3 else set())


def digest(model: BaseModel) -> str:
    """A short content hash of a snapshot (the changing part of an event id)."""
    return hashlib.sha256(model.model_dump_json().encode()).hexdigest()[:12]


async def follow(
    handle: WorkflowHandle[Any, Any],
    query: Callable[[], Awaitable[Progress]],
    *,
    last_event_id: str | None = None,
) -> AsyncIterator[RunEvent]:
    """Events of the run behind ``handle`` until it ends (see the module docstring).

    ``query`` reads the progress snapshot; a failing query (the run not picked up yet, its
    worker gone after the end) is skipped, never an error.
    """
    cursor = _Cursor.parse(last_event_id)
    result_task: asyncio.Future[Any] = asyncio.ensure_future(handle.result())
    interval = MIN_INTERVAL_SECONDS
    try:
        if cursor.digest:  # a resume: if the run had ended and its end was seen, nothing is new
            await asyncio.wait({result_task}, timeout=1.0)
            if (
                result_task.done()
                and _final_event(handle.id, result_task, 0).digest == cursor.digest
            ):
                return
        while True:
            changed = False
            async for event in _snapshot_events(handle.id, query, cursor):
                changed = True
                yield event
            if result_task.done():
                break
            interval = (
                MIN_INTERVAL_SECONDS if changed else min(interval * 1.5, MAX_INTERVAL_SECONDS)
            )
            await asyncio.wait({result_task}, timeout=interval)
        final = _final_event(handle.id, result_task, cursor.seq + 1)
        if final.digest != cursor.digest:
            yield final
    finally:
        result_task.cancel()
        if result_task.done() and not result_task.cancelled():
            result_task.exception()  # a caller that stopped early: the ending is theirs to read


async def _snapshot_events(
    run_id: str, query: Callable[[], Awaitable[Progress]], cursor: _Cursor
) -> AsyncIterator[RunEvent]:
    """A progress event if the snapshot changed, then one event per gate that started waiting."""
    try:
        progress = await query()
    except Exception:  # noqa: BLE001 - no snapshot this time; the result still ends the stream
        return
    snapshot = digest(progress)
    if snapshot != cursor.digest:
        cursor.seq += 1
        cursor.digest = snapshot
        yield ProgressEvent(run_id, cursor.seq, snapshot, progress)
    if not isinstance(progress, PipelineProgress):
        return
    for step in progress.steps:
        waiting = step.state == StepState.AWAITING_APPROVAL and step.approval is not None
        if waiting and step.name not in cursor.announced and step.approval is not None:
            cursor.announced.add(step.name)
            cursor.seq += 1
            yield ApprovalEvent(run_id, cursor.seq, snapshot, step.name, step.approval)


def _final_event(run_id: str, result_task: asyncio.Future[Any], seq: int) -> RunEvent:
    try:
        result = result_task.result()
    except WorkflowFailureError as exc:
        return _ending(run_id, seq, failure_from_workflow(exc, run_id))
    except StudioError as exc:
        return _ending(run_id, seq, exc)
    return _ending(run_id, seq, result)


def _ending(run_id: str, seq: int, outcome: Result | Exception) -> RunEvent:
    """The last event for a result or an error (the same id however the ending was learnt)."""
    if isinstance(outcome, Exception):
        error = outcome if isinstance(outcome, StudioError) else StudioError(str(outcome))
        return ErrorEvent(run_id, seq, _error_digest(error), error)
    return ResultEvent(run_id, seq, digest(outcome), outcome)


def recorded_events(
    run_id: str, outcome: Result | Exception, *, last_event_id: str | None = None
) -> list[RunEvent]:
    """The stream of a run Temporal has forgotten (past retention), from its durable record:
    its final event, or nothing when ``last_event_id`` shows the caller has seen it."""
    cursor = _Cursor.parse(last_event_id)
    event = _ending(run_id, cursor.seq + 1, outcome)
    return [] if event.digest == cursor.digest else [event]


def _error_digest(error: StudioError) -> str:
    return hashlib.sha256(repr(error.to_dict()).encode()).hexdigest()[:12]


def final_outcome(event: RunEvent) -> Result:
    """The result of a final event; raises the run's error for an ``error`` event."""
    if isinstance(event, ResultEvent):
        return event.result
    if isinstance(event, ErrorEvent):
        raise event.error
    raise ValueError(f"{event.kind} is not a final event")


__all__ = [
    "ApprovalEvent",
    "ErrorEvent",
    "ProgressEvent",
    "ResultEvent",
    "RunEvent",
    "final_outcome",
    "follow",
]
