"""``studio``: run the embedded stack, run operations with a live progress display, inspect usage.

Errors are one line on stderr with a documented exit code (``studio.cli_common.EXIT_CODES``);
``--json`` prints only JSON on stdout; input is validated before anything connects."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from config.settings import StudioSettings, get_settings
from contracts.operation import OperationRequest, OperationResult
from domain.options import GenerateOptions
from providers.catalogue import Operation, export_model_list, load_catalogue
from studio import cli_gates, cli_ledger, cli_pipeline, cli_runs
from studio.api import Studio
from studio.cli_common import (
    EXIT_CODES,
    client,
    console,
    example_file,
    maybe_stack,
    print_json,
    run_app,
)
from studio.stack import EmbeddedStack

app = typer.Typer(
    help="Image Studio Engine: durable AI image operations on Temporal.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
)
db_app = typer.Typer(help="Ledger database.")
app.add_typer(db_app, name="db")
for command in (
    cli_pipeline.run,
    cli_pipeline.quote,
    cli_pipeline.resume,
    cli_runs.status,
    cli_runs.cancel,
    cli_gates.approve,
    cli_gates.reject,
):
    app.command(epilog=EXIT_CODES)(command)
app.command("list", epilog=EXIT_CODES)(cli_runs.list_runs)
app.command("pipeline-schema")(cli_pipeline.pipeline_schema)
app.add_typer(cli_ledger.admin_app, name="admin")
app.add_typer(cli_ledger.ledger_app, name="ledger")
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (nothing else).")]


def _version(value: bool) -> None:
    if value:
        try:
            version = metadata.version("image-studio-engine")
        except metadata.PackageNotFoundError:  # running from a source tree without an install
            version = "unknown (not installed)"
        print(f"studio {version}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Image Studio Engine: durable AI image operations on Temporal."""


def main() -> None:
    """The ``studio`` command (one-line errors with documented exit codes)."""
    run_app(app)


@app.command(epilog=EXIT_CODES)
def demo(
    user: Annotated[str, typer.Option(help="User the run is billed to.")] = "demo-user",
    file: Annotated[
        Path | None, typer.Option(help="Pipeline to run (default: the shipped example).")
    ] = None,
) -> None:
    """Start the embedded stack and run the generate → upscale → image-to-3D example pipeline."""
    cli_pipeline.run(
        file or example_file("generate-upscale-3d.yaml"), user=user, embedded=True, yes=True
    )


@app.command(epilog=EXIT_CODES)
def generate(
    prompt: str,
    user: Annotated[str, typer.Option(help="User the run is billed to.")] = "demo-user",
    model: Annotated[str | None, typer.Option(help="Catalogue model id.")] = None,
    size: Annotated[str | None, typer.Option(help='Output size "W*H".')] = None,
    variations: Annotated[int, typer.Option(min=1, max=10)] = 1,
    seed: Annotated[int | None, typer.Option()] = None,
    embedded: Annotated[bool, typer.Option(help="Start the embedded stack for this run.")] = False,
    as_json: AsJson = False,
) -> None:
    """Run a text-to-image against the configured Temporal cluster (or the embedded stack)."""
    settings = get_settings()
    options = {"model": model, "size": size, "num_variations": variations, "seed": seed}
    options = {k: v for k, v in options.items() if v is not None}
    request = asyncio.run(  # validated before anything connects or starts
        Studio(None, settings).build_request(
            Operation.TEXT_TO_IMAGE,
            user_id=user,
            options=options,
            prompt=prompt,
            options_type=GenerateOptions,
            label="generate",
        )
    )
    with maybe_stack(settings, embedded):
        result = asyncio.run(_generate(settings, request, as_json))
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        cli_runs.show_result(settings, result)


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
def worker(
    processes: Annotated[
        int,
        typer.Option(
            "--processes", "-p", min=0, help="Worker processes on this host (0: one per CPU)."
        ),
    ] = 1,
) -> None:
    """Run worker processes under one supervisor: a crashed one is restarted, SIGTERM stops all
    gracefully. Configuration from the environment, as for ``python worker.py``."""
    from studio.worker_pool import WorkerPool

    raise typer.Exit(WorkerPool(processes or os.cpu_count() or 1).run())


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (default STUDIO_API_PORT, 8000).")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) and the WaveSpeed webhook endpoint."""
    import uvicorn

    from studio.http.app import create_app
    from studio.logs import configure_logging

    settings = get_settings()
    configure_logging(settings)
    uvicorn.run(create_app(settings), host=host, port=port or settings.api_port, log_config=None)


@app.command(epilog=EXIT_CODES)
def models(
    operation: Annotated[
        Operation | None, typer.Option(help="Only models for this operation.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Export the model list as JSON.")] = False,
) -> None:
    """The model catalogue: operation, price, limits and input fields."""
    catalogue = load_catalogue()
    if as_json:
        print_json(export_model_list(catalogue, operation))
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


@app.command(epilog=EXIT_CODES)
def usage(user: str, as_json: AsJson = False) -> None:
    """A user's plan, counters and spend in the current billing period."""
    from ledger.service import open_ledger

    settings = get_settings()
    ledger = open_ledger(settings.ledger_url, auto_migrate=settings.auto_migrate)
    if as_json:
        print_json(ledger.usage(user).to_dict())
    else:
        console.print_json(data=ledger.usage(user).to_dict())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the ledger's Alembic migrations to STUDIO_DATABASE_URL and load the plans."""
    from ledger.db import create_ledger_engine, current_revision, upgrade
    from ledger.service import Ledger

    settings = get_settings()
    engine = create_ledger_engine(settings.ledger_url)
    upgrade(engine)
    Ledger(engine).sync_plans()  # before any worker starts, so replicas don't race to insert
    console.print(f"ledger at revision {current_revision(engine)}")


# ---------------------------------------------------------------------- helpers


async def _generate(
    settings: StudioSettings, request: OperationRequest, as_json: bool
) -> OperationResult:
    studio = Studio(await client(settings), settings)
    handle = await studio.start_operation(request)
    return await cli_runs.follow(handle, quiet=as_json)


if __name__ == "__main__":
    main()
