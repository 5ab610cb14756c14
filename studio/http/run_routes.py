"""What operations and pipelines share: server-sent progress (resumable) and cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent
from temporalio.client import Client, WorkflowHandle

from contracts.operation import OperationResult
from contracts.pipeline import PipelineResult
from ledger.run_records import RunInfo
from studio.events import RunEvent, follow, recorded_events
from studio.http.context import (
    OPERATION,
    PIPELINE,
    Context,
    RunId,
    User,
    owned_record,
    owned_run,
    recorded_outcome,
)
from studio.http.schemas import Cancelled, RunItem, RunList
from studio.run_list import RunKind
from workflows.operation import ImageOperationWorkflow
from workflows.pipeline import ImagePipelineWorkflow

RETRY_MILLISECONDS = 3000
"""What browsers wait before reconnecting (they then send ``Last-Event-ID``)."""
router = APIRouter()
WORD = r"^[a-z_]+$"
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=200,
        description="Resume after this event: only what changed since is sent.",
    ),
]


def sse(event: RunEvent) -> ServerSentEvent:
    """One run event on the wire: its kind, its resumable id, its JSON data."""
    return ServerSentEvent(
        event=event.kind, id=event.id, data=event.data(), retry=RETRY_MILLISECONDS
    )


def run_events(
    client: Client, run_id: str, workflow_type: str, last_event_id: str | None
) -> AsyncIterator[RunEvent]:
    """The run's events (``studio.events``): the same stream ``handle.events()`` gives Python."""
    operation = workflow_type == OPERATION
    query = ImageOperationWorkflow.progress if operation else ImagePipelineWorkflow.progress
    typed = client.get_workflow_handle(  # results decoded into their models
        run_id, result_type=OperationResult if operation else PipelineResult
    )

    async def progress() -> Any:
        return await typed.query(query)

    return follow(typed, progress, last_event_id=last_event_id)


def _install(kind: str, workflow_type: str, singular: RunKind) -> None:
    @router.get(
        f"/v1/{kind}",
        tags=[kind],
        summary=f"Your {kind}, newest first (cursor pagination)",
        operation_id=f"list_{kind}",
        response_model=RunList,
    )
    async def listing(
        ctx: Context,
        user: User,
        status: Annotated[str | None, Query(max_length=40, pattern=WORD)] = None,
        operation: Annotated[str | None, Query(max_length=40, pattern=WORD)] = None,
        since: Annotated[datetime | None, Query(description="Started at or after")] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=4000)] = None,
    ) -> RunList:
        """Filters: ``status`` (running, awaiting_approval, completed, failed, canceled…),
        ``operation``, ``since``. Served from the durable run records: they outlive retention."""
        page = await ctx.studio.list_runs(
            user,
            kind=singular,
            status=status,
            operation=operation,
            since=since,
            limit=limit,
            cursor=cursor,
        )
        return RunList(
            data=[RunItem(**run.to_dict()) for run in page.runs], next_cursor=page.cursor
        )

    # Dependencies as defaults: these functions are local, so string annotations (PEP 563)
    # naming them could not be resolved by FastAPI.
    async def owned(run_id: RunId, ctx: Context, user: User) -> WorkflowHandle[Any, Any] | RunInfo:
        """The run in Temporal, or its ended record once Temporal has forgotten it (else 404)."""
        try:
            return await owned_run(ctx, run_id, user, workflow_type)
        except HTTPException:
            info = await asyncio.to_thread(owned_record, ctx, run_id, user, workflow_type)
            if info is None or not info.ended:
                raise
            return info

    @router.get(
        f"/v1/{kind}/{{run_id}}/events",
        tags=[kind],
        summary="Progress as server-sent events (resumable, with keep-alive pings)",
        operation_id=f"stream_{singular}_events",
        response_class=EventSourceResponse,
    )
    async def events(
        ctx: Context, handle: Any = Depends(owned), last_event_id: LastEventId = None
    ) -> AsyncIterator[Any]:
        """``progress`` events while the run changes, ``awaiting_approval`` when a gate waits,
        then one ``result`` or ``error`` event. Every event has an ``id``; reconnect with it in
        ``Last-Event-ID`` to get only what changed since. Idle streams get ``: ping`` comments
        every 15 s, so proxies keep them open. A run past retention sends its recorded end."""
        if isinstance(handle, RunInfo):
            outcome = recorded_outcome(handle)
            if outcome is not None:  # always: only ended records get here
                for ended in recorded_events(handle.id, outcome, last_event_id=last_event_id):
                    yield sse(ended)
            return
        async for event in run_events(ctx.studio.temporal, handle.id, workflow_type, last_event_id):
            yield sse(event)

    @router.post(
        f"/v1/{kind}/{{run_id}}/cancel",
        tags=[kind],
        status_code=202,
        summary="Cancel; holds are released",
        operation_id=f"cancel_{singular}",
        response_model=Cancelled,
    )
    async def cancel(handle: Any = Depends(owned)) -> Cancelled:
        if isinstance(handle, RunInfo):  # past retention: it ended long ago
            raise HTTPException(409, f"the run has ended ({handle.status}); nothing to cancel")
        await handle.cancel()
        return Cancelled(id=handle.id)


_install("operations", OPERATION, "operation")
_install("pipelines", PIPELINE, "pipeline")


__all__ = ["router", "run_events", "sse"]
