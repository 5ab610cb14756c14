"""Commands on any run, operation or pipeline: ``status RUN``, ``cancel RUN``, ``list``; and the live
progress display of an operation (``generate``)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from blobs.open_store import open_blob_store
from config.settings import StudioSettings, get_settings
from contracts.errors import FieldError, InvalidRequestError
from contracts.operation import OperationPhase, OperationProgress, OperationResult
from studio.api import Studio
from studio.cli_common import client, console, errors, guard, print_json
from studio.events import ProgressEvent, RunEvent, final_outcome
from studio.handles import OperationHandle
from studio.run_list import RunKind
from studio.temporal import ui_url

Run = Annotated[str, typer.Argument(metavar="RUN", help="An operation or pipeline id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (nothing else).")]
OPERATION_TYPE, PIPELINE_TYPE = "ImageOperation", "ImagePipeline"
PHASE_STEP = {
    OperationPhase.PENDING: 0,
    OperationPhase.RESERVED: 1,
    OperationPhase.UPLOADING: 1,
    OperationPhase.SUBMITTED: 2,
    OperationPhase.WAITING: 2,
    OperationPhase.STORING: 3,
    OperationPhase.SETTLING: 4,
    OperationPhase.SUCCEEDED: 5,
    OperationPhase.FAILED: 5,
    OperationPhase.CANCELLED: 5,
}


async def run_kind(studio: Studio, run_id: str, *, running: bool = False) -> str:
    """``ImageOperation`` or ``ImagePipeline``; ``InvalidRequestError`` for an unknown run (or,
    with ``running``, one that has ended)."""
    try:
        description = await studio.temporal.get_workflow_handle(run_id).describe()
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise InvalidRequestError(
                "unknown run", [FieldError("run", f"no operation or pipeline {run_id!r}")]
            ) from None
        raise
    if description.workflow_type not in (OPERATION_TYPE, PIPELINE_TYPE):
        raise InvalidRequestError(
            "unknown run", [FieldError("run", f"{run_id!r} is not an operation or a pipeline")]
        )
    status = description.status or WorkflowExecutionStatus.RUNNING
    if running and status != WorkflowExecutionStatus.RUNNING:
        raise InvalidRequestError(
            "the run has ended", [FieldError("run", f"{run_id} is {status.name.lower()}")]
        )
    return description.workflow_type


def status(
    run_id: Run,
    watch: Annotated[bool, typer.Option(help="Follow until it ends.")] = False,
    as_json: AsJson = False,
) -> None:
    """An operation's phase, or each pipeline step's state, cost so far and outputs."""
    from studio import cli_pipeline

    settings = get_settings()

    async def _status() -> None:
        studio = Studio(await client(settings), settings)
        if await run_kind(studio, run_id) == PIPELINE_TYPE:
            await cli_pipeline.show_status(settings, studio.pipeline(run_id), watch, as_json)
            return
        handle = studio.operation(run_id)
        if watch:
            result = await follow(handle, quiet=as_json)
            print_json(result.model_dump(mode="json")) if as_json else show_result(settings, result)
            return
        progress = await handle.progress()
        if as_json:
            print_json(progress.model_dump(mode="json"))
        else:
            show_operation(progress)

    guard(asyncio.run, _status())


def cancel(run_id: Run) -> None:
    """Cancel a running operation or pipeline: running work stops, reservations are released."""
    settings = get_settings()

    async def _cancel() -> None:
        studio = Studio(await client(settings), settings)
        await run_kind(studio, run_id, running=True)
        await studio.temporal.get_workflow_handle(run_id).cancel()
        errors.print(f"cancellation requested for {run_id}")

    guard(asyncio.run, _cancel())


def list_runs(
    user: Annotated[str, typer.Option(help="Whose runs.")],
    kind: Annotated[str | None, typer.Option(help="operation or pipeline (default both).")] = None,
    state: Annotated[
        str | None,
        typer.Option("--status", help="running, awaiting_approval, completed, failed, canceled…"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    cursor: Annotated[str | None, typer.Option(help="The next page's cursor.")] = None,
    as_json: AsJson = False,
) -> None:
    """A user's runs, newest first, a page at a time (the cursor of the next page is printed)."""
    settings = get_settings()
    if kind not in (None, "operation", "pipeline"):
        raise InvalidRequestError(
            "unknown kind", [FieldError("--kind", repr(kind), "operation, pipeline")]
        )

    async def _list() -> None:
        studio = Studio(await client(settings), settings)
        chosen: RunKind | None = "operation" if kind == "operation" else None
        chosen = "pipeline" if kind == "pipeline" else chosen
        page = await studio.list_runs(user, kind=chosen, status=state, limit=limit, cursor=cursor)
        if as_json:
            print_json({"data": [r.to_dict() for r in page.runs], "next_cursor": page.cursor})
            return
        table = Table("id", "kind", "operation", "status", "started")
        for run in page.runs:
            table.add_row(
                run.id,
                run.kind,
                run.operation or "",
                run.status,
                f"{run.started_at:%Y-%m-%d %H:%M:%S}",
            )
        console.print(table)
        if page.cursor:
            errors.print(f"more: studio list --user {user} --cursor {page.cursor}")

    guard(asyncio.run, _list())


async def follow(handle: OperationHandle, *, quiet: bool = False) -> OperationResult:
    """Show the run's phase live on stderr (from ``handle.events()``) until it ends."""
    errors.print(f"run [bold]{handle.workflow_id}[/] · {handle.ui_url}")
    last: RunEvent | None = None
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=errors,
        disable=quiet,
    ) as bar:
        task = bar.add_task("pending", total=5)
        async for event in handle.events():
            last = event
            if isinstance(event, ProgressEvent) and isinstance(event.progress, OperationProgress):
                state = event.progress
                bar.update(
                    task,
                    completed=PHASE_STEP[state.phase],
                    description=f"{state.phase.value}: {state.detail[:70]}",
                )
        bar.update(task, completed=5)
    assert last is not None, "events() always ends with the result or the error"
    result = final_outcome(last)
    assert isinstance(result, OperationResult)
    return result


def show_operation(progress: OperationProgress) -> None:
    """One operation's phase, predictions and cost so far."""
    console.print(
        f"{progress.operation_id}: [bold]{progress.phase.value}[/] · {progress.model_id} · "
        f"{progress.variations_done}/{progress.variations_total} variations · ${progress.cost_usd}"
    )
    if progress.detail:
        console.print(f"  {progress.detail}")


def show_result(settings: StudioSettings, result: OperationResult) -> None:
    """Where each output was stored (a named copy under the data directory), and the cost."""
    blobs = open_blob_store(settings)
    for index, output in enumerate(result.outputs):
        if output.blob is not None:
            size = f" {output.blob.width}x{output.blob.height}" if output.blob.width else ""
            named = blobs.export(
                output.blob, settings.data_dir / "outputs" / f"{result.workflow_id}-{index}"
            )
            console.print(f"[green]stored[/] {named}")
            console.print(f"  {output.blob.media_type}{size}; blob sha256 {output.blob.sha256}")
        elif output.text is not None:
            console.print(f"[green]text[/] {output.text}")
    console.print(f"charged ${result.cost_usd} · predictions {', '.join(result.prediction_ids)}")
    console.print(f"Temporal UI: {ui_url(settings, result.workflow_id)}")
