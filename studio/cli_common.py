"""What every CLI command shares: the consoles, the embedded stack switch, one-line failures with
documented exit codes, ``--json`` output and the confirmation rule.

Errors go to stderr, one line each, never a traceback for a mistake a person can fix; the exit
code says what kind of failure it was (``EXIT_CODES``, shown by ``studio --help``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

from config.settings import StudioSettings
from contracts.errors import (
    DecisionRefusedError,
    InvalidRequestError,
    OperationFailedError,
    QuotaExceededError,
    StudioError,
)
from studio.stack import EmbeddedStack

if TYPE_CHECKING:
    from temporalio.client import Client

console = Console()
"""Where results go (stdout)."""
errors = Console(stderr=True, highlight=False)
"""Where errors and progress go (stderr), so ``--json`` output stays parseable."""

OK, RUN_FAILED, INVALID, UNREACHABLE, REFUSED_BY_QUOTA, INTERNAL = 0, 1, 2, 3, 4, 70
EXIT_CODES = (
    "Exit codes: 0 done; 1 the run failed or was cancelled, or you declined; "
    "2 invalid input (missing file, bad YAML, unknown model or run, refused decision); "
    "3 Temporal or the database not reachable; 4 a plan limit or budget would be exceeded; "
    "70 internal error (STUDIO_DEBUG=1 shows the traceback)."
)
CONNECT_WAIT_SECONDS = 2.0
"""Enough for a server that is up; a down one is reported well within 5 s."""


class UnreachableError(Exception):
    """A service the command needs did not answer (exit code 3)."""


@contextlib.contextmanager
def maybe_stack(settings: StudioSettings, embedded: bool) -> Iterator[None]:
    """Run the body inside the embedded stack when ``embedded``; otherwise just run it."""
    if not embedded:
        yield
        return
    errors.print(f"starting the embedded stack in {settings.data_dir} …")
    with EmbeddedStack(settings) as stack:
        errors.print(
            f"[bold]Temporal UI[/] http://127.0.0.1:{stack.ui_port} · provider {settings.provider_url}"
        )
        yield


async def client(settings: StudioSettings) -> Client:
    """A Temporal client for ``settings``; ``UnreachableError`` (exit 3) within a few seconds."""
    from studio.temporal import connect, connect_config, describe_target

    try:
        return await connect(settings, wait_seconds=CONNECT_WAIT_SECONDS)
    except RuntimeError:
        raise UnreachableError(
            f"Temporal is not reachable at {describe_target(connect_config(settings))}: start it "
            "with `studio up`, or point STUDIO_TEMPORAL_ADDRESS / TEMPORAL_ADDRESS at it"
        ) from None


def guard(
    runner: Callable[[Coroutine[Any, Any, None]], object], coroutine: Coroutine[Any, Any, None]
) -> None:
    """Run ``coroutine`` with ``runner`` (``asyncio.run``); failures end the command cleanly."""
    try:
        runner(coroutine)
    except StudioError as exc:
        fail(exc)


def exit_code(exc: BaseException) -> int:
    """The documented exit code for ``exc`` (``EXIT_CODES``)."""
    if isinstance(exc, QuotaExceededError):
        return REFUSED_BY_QUOTA
    if isinstance(exc, OperationFailedError):
        return RUN_FAILED
    if isinstance(exc, (InvalidRequestError, DecisionRefusedError, StudioError, OSError)):
        return UNREACHABLE if isinstance(exc, ConnectionError) else INVALID
    if isinstance(exc, UnreachableError):
        return UNREACHABLE
    return INTERNAL


def one_line(exc: BaseException) -> str:
    """``exc`` as the single line a person reads on stderr."""
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename}"
    if isinstance(exc, IsADirectoryError):
        return f"a directory, not a file: {exc.filename}"
    if isinstance(exc, PermissionError):
        return f"not allowed to read: {exc.filename}"
    text = " ".join(str(exc).split())
    if isinstance(exc, UnreachableError):
        return text
    kind = exc.error_type if isinstance(exc, StudioError) else type(exc).__name__
    if isinstance(exc, OperationFailedError) and exc.failure_type:
        kind = exc.failure_type
    return f"{kind}: {text}" if text else kind


def fail(exc: BaseException) -> NoReturn:
    """Print ``exc`` on stderr in one line and exit with its code."""
    errors.print(f"[red]error[/]: {one_line(exc)}", markup=True, soft_wrap=True)
    if exit_code(exc) == INTERNAL and os.environ.get("STUDIO_DEBUG"):
        raise exc
    if exit_code(exc) == INTERNAL:
        errors.print("this is a bug; run again with STUDIO_DEBUG=1 for the traceback")
    raise typer.Exit(exit_code(exc))


def run_app(app: typer.Typer, args: list[str] | None = None) -> NoReturn:
    """Run the CLI: usage errors are typer's (exit 2), every other failure one line (``fail``).

    Exits with ``os._exit`` after flushing: the Temporal SDK's runtime threads can abort the
    interpreter during finalisation (sdk-python#300), which would turn any answer into a crash.
    """
    code: int
    try:
        app(args=args, prog_name="studio")
        code = OK
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (OK if stop.code is None else 1)
        if isinstance(stop.code, str):
            errors.print(stop.code)
    except KeyboardInterrupt:
        errors.print("interrupted")
        code = 130
    except BaseException as exc:  # noqa: BLE001 - the last place an error can be said in one line
        try:
            fail(exc)
        except typer.Exit as stop:
            code = stop.exit_code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout, nothing else (for ``--json``)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def confirm(question: str, yes: bool | None) -> bool:
    """``--yes`` answers yes, ``--no-yes``... asks; unset asks only when stdin is a terminal."""
    if yes or (yes is None and not sys.stdin.isatty()):
        return True
    return typer.confirm(question, err=True)


def example_file(name: str) -> Path:
    """A pipeline shipped with the package (``studio/examples``), found in any install."""
    return Path(__file__).resolve().parent / "examples" / name
