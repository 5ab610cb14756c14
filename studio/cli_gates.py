"""Gate commands: ``approve RUN [--choose N ...]`` and ``reject RUN``, plus how a waiting gate
reads in ``studio status``."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table

from contracts.pipeline import GateOutcome, PipelineProgress, StepState
from contracts.search import STUDIO_USER
from studio.api import Studio
from studio.cli_common import client as _client
from studio.cli_common import console
from studio.cli_common import guard as _guard
from studio.pipelines import PipelineHandle

Run = Annotated[str, typer.Argument(metavar="RUN")]
As = Annotated[
    str | None,
    typer.Option("--as", help="The deciding user (default: the run's own user)."),
]
Comment = Annotated[str | None, typer.Option(help="A note kept with the decision.")]
Gate = Annotated[str | None, typer.Option(help="Which gate, when more than one waits.")]


def approve(
    run_id: Run,
    choose: Annotated[
        list[int] | None,
        typer.Option(
            "--choose", help="Index (from 0) of a shown output to pass on; repeat for more."
        ),
    ] = None,
    as_user: As = None,
    comment: Comment = None,
    gate: Gate = None,
) -> None:
    """Approve a pipeline's waiting gate (``studio status RUN`` lists what it shows)."""

    async def _approve() -> None:
        handle = await _handle(run_id)
        user = as_user or await _run_user(handle)
        _show_outcome(await handle.approve(user_id=user, chosen=choose, comment=comment, gate=gate))

    _guard(asyncio.run, _approve())


def reject(run_id: Run, as_user: As = None, comment: Comment = None, gate: Gate = None) -> None:
    """Reject at a pipeline's waiting gate: nothing after it runs and its hold is released."""

    async def _reject() -> None:
        handle = await _handle(run_id)
        user = as_user or await _run_user(handle)
        _show_outcome(await handle.reject(user_id=user, comment=comment, gate=gate))

    _guard(asyncio.run, _reject())


def show_waiting(state: PipelineProgress) -> None:
    """For each waiting gate: the question, the numbered outputs, and the commands to answer."""
    for step in state.steps:
        approval = step.approval
        if step.state != StepState.AWAITING_APPROVAL or approval is None:
            continue
        title = f"gate {step.name}: waiting for {', '.join(approval.approvers)}"
        if approval.deadline:
            title += f" until {approval.deadline:%Y-%m-%d %H:%M} UTC (then {approval.on_timeout})"
        table = Table("#", "from", "output", title=title)
        index = 0
        for source in approval.shown_steps:
            for output in next(s for s in state.steps if s.name == source).outputs:
                table.add_row(str(index), source, _describe(output))
                index += 1
        console.print(table)
        if approval.prompt:
            console.print(f"[bold]{approval.prompt}[/]")
        pick = " --choose N" * (approval.choose or 0)
        console.print(
            f"answer: studio approve {state.pipeline_id}{pick}  |  studio reject {state.pipeline_id}"
        )


async def _handle(run_id: str) -> PipelineHandle:
    from config.settings import get_settings

    settings = get_settings()
    return Studio(await _client(settings), settings).pipeline(run_id)


async def _run_user(handle: PipelineHandle) -> str:
    description = await handle.handle.describe()
    user = description.typed_search_attributes.get(STUDIO_USER)
    if user is None:
        raise typer.BadParameter("the run names no user: pass --as USER")
    return user


def _describe(output: object) -> str:
    blob = getattr(output, "blob", None)
    if blob is None:
        return str(getattr(output, "text", "") or "")[:60]
    size = f" {blob.width}x{blob.height}" if blob.width else ""
    return f"{blob.sha256[:12]}… {blob.media_type}{size} {blob.location}"


def _show_outcome(outcome: GateOutcome) -> None:
    verb = "approved" if outcome.decision == "approve" else "rejected"
    picked = f", passing on output(s) {outcome.chosen}" if outcome.decision == "approve" else ""
    console.print(
        f"[bold]{verb}[/] gate {outcome.gate} of {outcome.pipeline_id} as {outcome.decided_by}"
        + picked
    )
