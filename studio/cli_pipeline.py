"""Pipeline commands: ``run FILE``, ``quote FILE``, ``resume RUN`` and a pipeline's ``status``
(gates: ``studio.cli_gates``; ``status``/``cancel`` of any run: ``studio.cli_runs``)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from blobs.open_store import open_blob_store
from config.settings import StudioSettings, get_settings
from contracts.errors import StudioError
from contracts.pipeline import FINISHED_STATES, PipelineProgress, PipelineResult
from domain.pipelines.definition import write_json_schema
from studio.api import Studio
from studio.cli_common import RUN_FAILED, confirm, console, errors, print_json
from studio.cli_common import client as _client
from studio.cli_common import guard as _guard
from studio.cli_common import maybe_stack as _maybe_stack
from studio.cli_gates import show_waiting
from studio.events import ApprovalEvent, ProgressEvent, RunEvent, final_outcome
from studio.pipelines import PipelineHandle, PipelineQuote

User = Annotated[str, typer.Option(help="User the run is billed to.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (nothing else).")]
Embedded = Annotated[
    bool,
    typer.Option(help="Start the embedded stack (dev server, emulator, worker) for this command."),
]


def run(
    file: Path,
    user: User = "demo-user",
    embedded: Embedded = False,
    yes: Annotated[
        bool | None,
        typer.Option(
            "--yes/--ask",
            "-y",
            help="Reserve the quote without asking (default: ask when stdin is a terminal).",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Quote a pipeline file, then run it with live progress; prints where every output is stored."""
    settings = get_settings()
    quoted = asyncio.run(_quote_file(settings, file, user, None))  # before any connection
    _show_quote(quoted, quiet=as_json)
    if not confirm("Reserve this quote and run?", yes):
        raise typer.Exit(RUN_FAILED)
    with _maybe_stack(settings, embedded):
        _guard(asyncio.run, _run(settings, file, user, as_json))


def quote(
    file: Path,
    user: User = "demo-user",
    resume_of: Annotated[str | None, typer.Option(help="Price a resume of this run.")] = None,
    as_json: AsJson = False,
) -> None:
    """Price a pipeline before it runs (no stack needed)."""
    settings = get_settings()
    quoted = asyncio.run(_quote_file(settings, file, user, resume_of))
    if as_json:
        print_json({**quoted.model_dump(mode="json"), "summary": quoted.describe()})
    else:
        _show_quote(quoted)


def resume(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    embedded: Embedded = False,
    as_json: AsJson = False,
) -> None:
    """Run a failed or cancelled pipeline again; steps with stored outputs are not paid again."""
    settings = get_settings()

    async def _resume() -> None:
        studio = Studio(await _client(settings), settings)
        previous = studio.pipelines.stored_run(run_id)
        if previous is not None:
            _show_quote(
                await studio.quote_pipeline(
                    previous.definition, user_id=previous.user_id, resume_of=run_id
                ),
                quiet=as_json,
            )
        handle = await studio.resume_pipeline(run_id)
        await _finish(settings, handle, as_json)

    with _maybe_stack(settings, embedded):
        _guard(asyncio.run, _resume())


async def show_status(
    settings: StudioSettings, handle: PipelineHandle, watch: bool, as_json: bool
) -> None:
    """``studio status`` of a pipeline: its steps now, or followed until it ends."""
    if watch:
        await _finish(settings, handle, as_json)
    elif as_json:
        print_json((await handle.progress()).model_dump(mode="json"))
    else:
        _show_progress(await handle.progress())


def pipeline_schema(output: Path = Path("docs/pipeline.schema.json")) -> None:
    """Write the JSON Schema of the pipeline definition format."""
    write_json_schema(output)
    console.print(f"wrote {output}")


# ---------------------------------------------------------------------- helpers


async def _quote_file(
    settings: StudioSettings, file: Path, user: str, resume_of: str | None
) -> PipelineQuote:
    """Read and price ``file`` without Temporal: every mistake in it is reported first."""
    studio = Studio(None, settings)  # pricing needs the catalogue and the ledger, not Temporal
    return await studio.quote_pipeline(file, user_id=user, resume_of=resume_of)


async def _run(settings: StudioSettings, file: Path, user: str, as_json: bool) -> None:
    studio = Studio(await _client(settings), settings)
    handle = await studio.start_pipeline(file, user_id=user)
    await _finish(settings, handle, as_json)


async def _finish(settings: StudioSettings, handle: PipelineHandle, as_json: bool) -> None:
    """Follow the run; print its outputs (or its JSON); a failure ends the command."""
    try:
        result = await _follow(handle, quiet=as_json)
    except StudioError:
        with contextlib.suppress(Exception):
            _show_progress(await handle.progress(), to=errors)
        raise
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        _print_outputs(settings, result)


async def _follow(handle: PipelineHandle, *, quiet: bool) -> PipelineResult:
    """Bars per step from ``handle.events()``; a waiting gate shows what it asks, once."""
    errors.print(f"run [bold]{handle.pipeline_id}[/] · {handle.ui_url}")
    bars: dict[str, TaskID] = {}
    last: RunEvent | None = None
    latest: PipelineProgress | None = None
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        disable=quiet,
    ) as progress:
        async for event in handle.events():
            last = event
            if isinstance(event, ProgressEvent) and isinstance(event.progress, PipelineProgress):
                _update_bars(progress, bars, event.progress)
                latest = event.progress
            if isinstance(event, ApprovalEvent) and latest is not None and not quiet:
                show_waiting(latest)
    assert last is not None, "events() always ends with the result or the error"
    result = final_outcome(last)
    assert isinstance(result, PipelineResult)
    return result


def _update_bars(progress: Progress, bars: dict[str, TaskID], state: PipelineProgress) -> None:
    for step in state.steps:
        description = f"{step.name:<12} {step.state.value:<10} ${step.cost_usd}"
        if step.name not in bars:
            bars[step.name] = progress.add_task(description, total=max(step.runs, 1))
        done = step.runs if step.state in FINISHED_STATES else step.runs_done
        progress.update(
            bars[step.name], description=description, total=max(step.runs, 1), completed=done
        )


def _show_quote(quote: PipelineQuote, *, quiet: bool = False) -> None:
    if quiet:
        return
    table = Table(
        "step",
        "operation",
        "model",
        "runs",
        "units",
        "unit price",
        "worst case",
        "note",
        title=f"quote: {quote.name}",
    )
    for step in quote.steps:
        table.add_row(
            step.name,
            step.operation,
            step.model_id or ("(a person)" if step.operation == "approve" else "(local)"),
            str(step.runs),
            str(step.units),
            f"${step.unit_price_usd}",
            f"${step.worst_case_usd}",
            "stored" if step.reusable else ("after approval" if step.after_approval else ""),
        )
    errors.print(table)
    errors.print(f"[bold]{quote.describe()}[/]")


def _show_progress(state: PipelineProgress, to: Console = console) -> None:
    table = Table(
        "step", "state", "runs", "cost", "outputs", title=f"{state.pipeline_id}: {state.state}"
    )
    for step in state.steps:
        outputs = ", ".join(
            (o.blob.sha256[:12] + "…" if o.blob else (o.text or "")[:30]) for o in step.outputs
        )
        table.add_row(
            step.name,
            step.state.value + (f" ({step.error})" if step.error else ""),
            f"{step.runs_done}/{step.runs}",
            f"${step.cost_usd}",
            outputs,
        )
    to.print(table)
    to.print(f"cost ${state.cost_usd} of ${state.quoted_usd} quoted")
    show_waiting(state)


def _print_outputs(settings: StudioSettings, result: PipelineResult) -> None:
    blobs = open_blob_store(settings)
    for step in result.steps:
        for index, output in enumerate(step.outputs):
            if output.blob is not None:
                named = blobs.export(
                    output.blob,
                    settings.data_dir / "outputs" / f"{result.pipeline_id}.{step.name}-{index}",
                )
                size = f" {output.blob.width}x{output.blob.height}" if output.blob.width else ""
                console.print(
                    f"[green]{step.name}[/] ({step.state.value}) {named} [{output.blob.media_type}{size}]"
                )
            elif output.text is not None:
                console.print(f"[green]{step.name}[/] ({step.state.value}) text: {output.text}")
    console.print(f"[bold]charged ${result.cost_usd}[/] (quoted ${result.quoted_usd})")
