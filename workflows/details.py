"""How a pipeline run reads in the Temporal UI: its current details, rebuilt on every change."""

from __future__ import annotations

from decimal import Decimal

from contracts.pipeline import ApprovalProgress, StepProgress, StepState

KIND_NOUNS = {"image": "image", "model_3d": "3D model", "text": "text"}


def pipeline_details(
    state: str, name: str, cost: Decimal, quoted: Decimal, steps: dict[str, StepProgress]
) -> str:
    """Markdown: what waits for a person (first), the run's state and cost, a row per step."""
    waiting = [
        waiting_line(s.name, s.approval)
        for s in steps.values()
        if s.state == StepState.AWAITING_APPROVAL and s.approval is not None
    ]
    lines = [
        *waiting,
        f"**{state}** · pipeline `{name}` · cost ${cost} of ${quoted} quoted",
        "",
        "| step | operation | state | runs | cost |",
        "|---|---|---|---|---|",
    ]
    for s in steps.values():
        runs = f"{s.runs_done}/{s.runs}" + (f" ({s.reused_runs} reused)" if s.reused_runs else "")
        lines.append(f"| {s.name} | {s.operation} | {s.state.value} | {runs} | ${s.cost_usd} |")
    return "\n".join(lines)


def waiting_line(gate: str, approval: ApprovalProgress) -> str:
    """One line for the UI's current details: what waits for whom, and until when."""
    count = len(approval.shown)
    kind = approval.shown[0].kind.value if approval.shown else "image"
    noun = KIND_NOUNS.get(kind, kind) + ("" if count == 1 else "s")
    line = f"**waiting for approval of {' + '.join(approval.shown_steps)}: {count} {noun}**"
    if approval.choose:
        line += f" (choose {approval.choose})"
    deadline = f"{approval.deadline:%Y-%m-%d %H:%M} UTC" if approval.deadline else "?"
    line += (
        f" · gate `{gate}` · decided by {', '.join(approval.approvers)}"
        f" · until {deadline}, then {approval.on_timeout}"
    )
    return line + (f"\n> {approval.prompt}" if approval.prompt else "")
