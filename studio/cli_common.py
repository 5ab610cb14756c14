"""What every CLI command shares: the console, the embedded stack switch, clear failures."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import typer
from rich.console import Console

from studio.errors import StudioError
from studio.settings import StudioSettings
from studio.stack import EmbeddedStack

console = Console()


@contextlib.contextmanager
def maybe_stack(settings: StudioSettings, embedded: bool) -> Iterator[None]:
    if not embedded:
        yield
        return
    console.print(f"starting the embedded stack in {settings.data_dir} …")
    with EmbeddedStack(settings) as stack:
        console.print(
            f"[bold]Temporal UI[/] http://127.0.0.1:{stack.ui_port} · provider {settings.provider_url}"
        )
        yield


async def client(settings: StudioSettings):  # type: ignore[no-untyped-def]
    from studio.temporal import connect

    try:
        return await connect(settings, wait_seconds=5)
    except RuntimeError:
        console.print(
            f"[red]Temporal is not reachable at {settings.temporal_address}[/]: start it with `studio up` "
            "or pass --embedded"
        )
        raise typer.Exit(2) from None


def guard(runner, coroutine) -> None:  # type: ignore[no-untyped-def]
    try:
        runner(coroutine)
    except StudioError as exc:
        fail(exc)


def fail(exc: StudioError) -> None:
    console.print(f"[red]{exc.error_type}[/]: {exc}")
    details = exc.to_dict()
    if details.get("errors"):
        console.print_json(json.dumps(details["errors"]))
    raise typer.Exit(code=2)
