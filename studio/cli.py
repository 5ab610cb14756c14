"""``studio``: run the embedded stack, run operations with a live progress display, inspect usage."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from providers.catalogue import Operation, export_model_list, load_catalogue
from studio import cli_ledger, cli_pipeline
from studio.api import OperationHandle, Studio
from studio.blobs import BlobStore
from studio.cli_common import console, fail, maybe_stack
from studio.contracts import OperationPhase, OperationResult
from studio.errors import StudioError
from studio.settings import StudioSettings, get_settings
from studio.stack import EmbeddedStack
from studio.temporal import ui_url

app = typer.Typer(
    help="Image Studio Engine: durable AI image operations on Temporal.", no_args_is_help=True
)
db_app = typer.Typer(help="Ledger database.")
app.add_typer(db_app, name="db")
for command in (
    cli_pipeline.run,
    cli_pipeline.quote,
    cli_pipeline.resume,
    cli_pipeline.status,
    cli_pipeline.cancel,
):
    app.command()(command)
app.command("pipeline-schema")(cli_pipeline.pipeline_schema)
app.add_typer(cli_ledger.admin_app, name="admin")
app.add_typer(cli_ledger.ledger_app, name="ledger")
EXAMPLE_PIPELINE = Path(__file__).resolve().parent.parent / "examples" / "generate-upscale-3d.yaml"

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


@app.command()
def demo(
    user: Annotated[str, typer.Option(help="User the run is billed to.")] = "demo-user",
    file: Annotated[Path, typer.Option(help="Pipeline to run.")] = EXAMPLE_PIPELINE,
) -> None:
    """Start the embedded stack and run the generate → upscale → image-to-3D example pipeline."""
    cli_pipeline.run(file, user=user, embedded=True, yes=True)


@app.command()
def generate(
    prompt: str,
    user: Annotated[str, typer.Option(help="User the run is billed to.")] = "demo-user",
    model: Annotated[str | None, typer.Option(help="Catalogue model id.")] = None,
    size: Annotated[str | None, typer.Option(help='Output size "W*H".')] = None,
    variations: Annotated[int, typer.Option(min=1, max=10)] = 1,
    seed: Annotated[int | None, typer.Option()] = None,
    embedded: Annotated[bool, typer.Option(help="Start the embedded stack for this run.")] = False,
) -> None:
    """Run a text-to-image against the configured Temporal cluster (or the embedded stack)."""
    settings = get_settings()
    options = {"model": model, "size": size, "num_variations": variations, "seed": seed}
    options = {k: v for k, v in options.items() if v is not None}
    with maybe_stack(settings, embedded):
        result = asyncio.run(_generate(settings, prompt, options, user))
    _print_result(settings, result)


@app.command()
def up() -> None:
    """Run the embedded stack (dev server + UI, emulator, worker) until Ctrl-C."""
    settings = get_settings()
    with EmbeddedStack(settings) as stack:
        console.print(
            f"[green]embedded stack up[/]: Temporal {settings.temporal_address}, "
            f"UI http://127.0.0.1:{stack.ui_port}, provider {settings.provider_url}, data {settings.data_dir}"
        )
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        try:
            while not stop:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (default STUDIO_API_PORT, 8000).")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) and the WaveSpeed webhook endpoint."""
    import uvicorn

    from studio.http.app import create_app

    settings = get_settings()
    uvicorn.run(create_app(settings), host=host, port=port or settings.api_port, log_level="info")


@app.command()
def models(
    operation: Annotated[
        Operation | None, typer.Option(help="Only models for this operation.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Export the model list as JSON.")] = False,
) -> None:
    """The model catalogue: operation, price, limits and input fields."""
    catalogue = load_catalogue()
    if as_json:
        print(json.dumps(export_model_list(catalogue, operation), indent=2))
        return
    table = Table("id", "operations", "price", "output", "path")
    for spec in catalogue.for_operation(operation) if operation else catalogue.models:
        table.add_row(
            spec.id,
            ", ".join(spec.operations),
            f"${spec.price_usd}",
            spec.output.kind.value,
            spec.path,
        )
    console.print(table)


@app.command()
def usage(user: str) -> None:
    """A user's plan, counters and spend in the current billing period."""
    from activities.resources import StudioResources

    resources = StudioResources.from_settings(get_settings())
    console.print_json(data=resources.ledger.usage(user).to_dict())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the ledger's Alembic migrations to STUDIO_DATABASE_URL."""
    from studio.ledger.db import create_ledger_engine, current_revision, upgrade

    settings = get_settings()
    engine = create_ledger_engine(settings.ledger_url)
    upgrade(engine)
    console.print(f"ledger at revision {current_revision(engine)}")


# ---------------------------------------------------------------------- helpers


async def _generate(
    settings: StudioSettings, prompt: str, options: dict, user: str
) -> OperationResult:
    studio = await Studio.connect(settings)
    try:
        handle = await studio.start_generate_image(prompt, options, user)
    except StudioError as exc:
        fail(exc)
    console.print(f"run [bold]{handle.workflow_id}[/] · {handle.ui_url}")
    return await _follow(handle)


async def _follow(handle: OperationHandle) -> OperationResult:
    """Show the run's phase live (from the workflow's query) until it ends."""
    result_task = asyncio.ensure_future(handle.result())
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("pending", total=5)
        while not result_task.done():
            try:
                state = await handle.progress()
                progress.update(
                    task,
                    completed=PHASE_STEP[state.phase],
                    description=f"{state.phase.value}: {state.detail[:70]}",
                )
            except Exception:  # the query can race the worker picking the run up; keep showing
                pass
            await asyncio.wait({result_task}, timeout=0.3)
        progress.update(task, completed=5)
    try:
        return result_task.result()
    except StudioError as exc:
        fail(exc)


def _print_result(settings: StudioSettings, result: OperationResult) -> None:
    blobs = BlobStore(settings.blob_root)
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
    console.print(
        f"Temporal UI: {ui_url(settings, result.workflow_id)} (run `studio up` to browse it)"
    )


if __name__ == "__main__":
    app()
