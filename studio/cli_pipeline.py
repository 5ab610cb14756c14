"""Pipeline commands: ``run FILE``, ``quote FILE``, ``resume RUN``, ``status RUN``, ``cancel RUN``."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer
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

from studio.api import Studio
from studio.blobs import BlobStore
from studio.cli_common import client as _client
from studio.cli_common import console
from studio.cli_common import fail as _fail
from studio.cli_common import guard as _guard
from studio.cli_common import maybe_stack as _maybe_stack
from studio.errors import StudioError
from studio.pipelines.client import PipelineHandle, PipelineQuote
from studio.pipelines.contracts import FINISHED_STATES, PipelineProgress, PipelineResult
from studio.pipelines.definition import write_json_schema
from studio.settings import StudioSettings, get_settings

User = Annotated[str, typer.Option(help="User the run is billed to.")]
Embedded = Annotated[
    bool,
    typer.Option(help="Start the embedded stack (dev server, emulator, worker) for this command."),
]


def run(
    file: Path,
    user: User = "demo-user",
    embedded: Embedded = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before reserving the quote.")
    ] = True,
) -> None:
    """Quote a pipeline file, then run it with live progress; prints where every output is stored."""
    settings = get_settings()
    with _maybe_stack(settings, embedded):
        asyncio.run(_run(settings, file, user, yes))


def quote(
    file: Path,
    user: User = "demo-user",
    resume_of: Annotated[str | None, typer.Option(help="Price a resume of this run.")] = None,
) -> None:
    """Price a pipeline before it runs (no stack needed)."""
    settings = get_settings()

    async def _quote() -> None:
        studio = Studio(None, settings)  # pricing needs the catalogue and the ledger, not Temporal
        _show_quote(await studio.quote_pipeline(file, user, resume_of=resume_of))

    _guard(asyncio.run, _quote())


def resume(
    run_id: Annotated[str, typer.Argument(metavar="RUN")], embedded: Embedded = False
) -> None:
    """Run a failed or cancelled pipeline again; steps with stored outputs are not paid again."""
    settings = get_settings()

    async def _resume() -> None:
        studio = Studio(await _client(settings), settings)
        previous = studio.pipelines._cache().run(run_id)
        if previous is not None:
            _show_quote(
                await studio.quote_pipeline(previous.definition, previous.user_id, resume_of=run_id)
            )
        handle = await studio.resume_pipeline(run_id)
        await _follow(settings, handle)

    with _maybe_stack(settings, embedded):
        _guard(asyncio.run, _resume())


def status(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    watch: Annotated[bool, typer.Option(help="Follow until it ends.")] = False,
) -> None:
    """Each step's state, cost so far and outputs."""
    settings = get_settings()

    async def _status() -> None:
        studio = Studio(await _client(settings), settings)
        handle = studio.pipeline(run_id)
        if watch:
            await _follow(settings, handle)
        else:
            _show_progress(await handle.progress())

    _guard(asyncio.run, _status())


def cancel(run_id: Annotated[str, typer.Argument(metavar="RUN")]) -> None:
    """Cancel a running pipeline: running steps stop, their reservations are released."""
    settings = get_settings()

    async def _cancel() -> None:
        studio = Studio(await _client(settings), settings)
        await studio.pipeline(run_id).cancel()
        console.print(f"cancellation requested for {run_id}")

    _guard(asyncio.run, _cancel())


def pipeline_schema(output: Path = Path("docs/pipeline.schema.json")) -> None:
    """Write the JSON Schema of the pipeline definition format."""
    write_json_schema(output)
    console.print(f"wrote {output}")


# ---------------------------------------------------------------------- helpers


async def _run(settings: StudioSettings, file: Path, user: str, yes: bool) -> None:
    studio = Studio(await _client(settings), settings)
    try:
        _show_quote(await studio.quote_pipeline(file, user))
        if not yes and not typer.confirm("Reserve this quote and run?"):
            raise typer.Exit(1)
        handle = await studio.start_pipeline(file, user)
    except StudioError as exc:
        _fail(exc)
    await _follow(settings, handle)


async def _follow(settings: StudioSettings, handle: PipelineHandle) -> PipelineResult:
    console.print(f"run [bold]{handle.pipeline_id}[/] · {handle.ui_url}")
    result_task = asyncio.ensure_future(handle.result())
    bars: dict[str, TaskID] = {}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        while True:
            with contextlib.suppress(Exception):  # the query can race the worker picking the run up
                _update_bars(progress, bars, await handle.progress())
            if result_task.done():
                break
            await asyncio.wait({result_task}, timeout=0.3)
    try:
        result = result_task.result()
    except StudioError as exc:
        with contextlib.suppress(Exception):
            _show_progress(await handle.progress())
        _fail(exc)
    _print_outputs(settings, result)
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


def _show_quote(quote: PipelineQuote) -> None:
    table = Table(
        "step",
        "operation",
        "model",
        "runs",
        "units",
        "unit price",
        "worst case",
        "reuse",
        title=f"quote: {quote.name}",
    )
    for step in quote.steps:
        table.add_row(
            step.name,
            step.operation,
            step.model_id or "(local)",
            str(step.runs),
            str(step.units),
            f"${step.unit_price_usd}",
            f"${step.worst_case_usd}",
            "stored" if step.reusable else "",
        )
    console.print(table)
    console.print(f"[bold]{quote.describe()}[/]")


def _show_progress(state: PipelineProgress) -> None:
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
    console.print(table)
    console.print(f"cost ${state.cost_usd} of ${state.quoted_usd} quoted")


def _print_outputs(settings: StudioSettings, result: PipelineResult) -> None:
    blobs = BlobStore(settings.blob_root)
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
