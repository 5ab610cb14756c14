"""Gates: the checks a person's decision must pass, and how a waiting gate reads in the UI.

Pure functions over the run's step progress, so the ``decide`` Update's validator and its handler
apply the very same rules (the validator refuses to the caller; nothing reaches history).
"""

from __future__ import annotations

from datetime import datetime

from temporalio.exceptions import ApplicationError

from contracts.errors import FieldError, InvalidRequestError
from contracts.operation import StoredOutput
from contracts.pipeline import (
    ApprovalProgress,
    ApprovalStatus,
    GateDecision,
    GateOutcome,
    StepProgress,
    StepState,
)
from domain.pipelines.definition import ApprovalSettings

DECISION_REFUSED = "DecisionRefused"
"""The decision cannot apply now (wrong person, nothing waiting, already decided)."""
INVALID_DECISION = "InvalidRequest"
"""The decision itself is malformed (which gate, which outputs); details name the field."""


def waiting_approval(
    settings: ApprovalSettings, shown: list[StoredOutput], run_user: str, now: datetime
) -> ApprovalProgress:
    """A gate that starts waiting: what its reviewer sees, who may decide, and until when."""
    return ApprovalProgress(
        status=ApprovalStatus.WAITING,
        shown_steps=list(settings.show),
        shown=shown,
        choose=settings.choose,
        approvers=list(settings.approvers) or [run_user],
        prompt=settings.prompt,
        on_timeout=settings.on_timeout,
        waiting_since=now,
        deadline=now + settings.wait,
    )


def reused_approval(shown: list[StoredOutput], approved: list[StoredOutput]) -> ApprovalProgress:
    """A gate passed on a resume: an earlier run of the chain approved these very outputs."""
    chosen = [shown.index(o) for o in approved if o in shown]
    return ApprovalProgress(
        status=ApprovalStatus.REUSED, shown_steps=[], shown=shown, approvers=[], chosen=chosen
    )


def waiting_gates(steps: dict[str, StepProgress]) -> list[str]:
    """Gates waiting for a decision right now (not decided, not stopped by a failure)."""
    return [
        name
        for name, s in steps.items()
        if s.state == StepState.AWAITING_APPROVAL
        and s.approval is not None
        and s.approval.status is ApprovalStatus.WAITING
    ]


def refused(message: str) -> ApplicationError:
    return ApplicationError(message, type=DECISION_REFUSED, non_retryable=True)


def invalid(message: str, field: str, allowed: str | None = None) -> ApplicationError:
    """Same shape as every other invalid request (``studio.outcomes`` maps it back)."""
    error = InvalidRequestError("invalid decision", [FieldError(field, message, allowed)])
    return ApplicationError(str(error), error.to_dict(), type=INVALID_DECISION, non_retryable=True)


def check_decision(decision: GateDecision, steps: dict[str, StepProgress], pipeline_id: str) -> str:
    """The gate ``decision`` applies to, or raise the refusal the caller sees."""
    gates = {name: s.approval for name, s in steps.items() if s.operation == "approve"}
    waiting = waiting_gates(steps)
    if decision.gate is not None and decision.gate not in gates:
        raise invalid(
            f"pipeline {pipeline_id} has no gate {decision.gate!r}",
            "gate",
            "one of " + ", ".join(gates) if gates else "none: this pipeline has no gates",
        )
    name = decision.gate or (waiting[0] if len(waiting) == 1 else None)
    if name is None and waiting:
        raise invalid(
            f"{len(waiting)} gates are waiting: name the one you decide",
            "gate",
            "one of " + ", ".join(waiting),
        )
    if name is None and not gates:
        raise refused(f"pipeline {pipeline_id} has no approve step: nothing waits for a decision")
    if name is None and len(gates) > 1:
        states = ", ".join(f"{g} {steps[g].state.value}" for g in gates)
        raise refused(f"pipeline {pipeline_id} is not waiting for a decision (gates: {states})")
    if name is None or name not in waiting:
        raise refused(_not_waiting(pipeline_id, name or next(iter(gates)), steps))
    approval = gates[name]
    assert approval is not None
    if decision.user_id not in approval.approvers:
        who = ", ".join(approval.approvers)
        raise refused(
            f"user {decision.user_id!r} may not decide at gate {name!r} of pipeline "
            f"{pipeline_id}: only {who} may"
        )
    if decision.decision == "reject":
        if decision.chosen:
            raise invalid("a rejection chooses no outputs", "chosen")
        return name
    _check_chosen(decision.chosen, approval, name)
    return name


def apply_decision(
    pipeline_id: str, gate: str, decision: GateDecision, steps: dict[str, StepProgress]
) -> tuple[ApprovalProgress, GateOutcome]:
    """The gate's approval after a checked ``decision``, and the answer the decider gets."""
    approval = steps[gate].approval
    assert approval is not None
    approve = decision.decision == "approve"
    chosen = (decision.chosen or list(range(len(approval.shown)))) if approve else []
    decided = approval.model_copy(
        update={
            "status": ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED,
            "decided_by": decision.user_id,
            "chosen": chosen,
            "comment": decision.comment,
        }
    )
    return decided, GateOutcome(
        pipeline_id=pipeline_id,
        gate=gate,
        decision=decision.decision,
        decided_by=decision.user_id,
        chosen=chosen,
        outputs=[approval.shown[i] for i in chosen],
    )


def _check_chosen(chosen: list[int] | None, approval: ApprovalProgress, gate: str) -> None:
    shown = len(approval.shown)
    allowed = f"indexes from 0 to {shown - 1} of the {shown} shown outputs, each once"
    if approval.choose is not None and (chosen is None or len(chosen) != approval.choose):
        raise invalid(
            f"gate {gate!r} needs exactly {approval.choose} chosen output(s)",
            "chosen",
            f"{approval.choose} " + allowed,
        )
    if chosen is None:
        return
    if not chosen:
        raise invalid("an approval chooses at least one output (or leave chosen out)", "chosen")
    if any(i < 0 or i >= shown for i in chosen) or len(set(chosen)) != len(chosen):
        raise invalid(f"{chosen} is not a choice among the shown outputs", "chosen", allowed)


def _not_waiting(pipeline_id: str, gate: str, steps: dict[str, StepProgress]) -> str:
    progress = steps[gate]
    approval = progress.approval
    if approval is None or progress.state.value in ("pending", "running"):
        why = f"gate {gate!r}: its inputs are not ready yet"
    elif approval.timed_out:
        why = f"gate {gate!r} timed out and was {approval.status.value}"
    elif approval.decided_by:
        why = f"gate {gate!r} was already {approval.status.value} by {approval.decided_by}"
    else:
        why = f"gate {gate!r} is {progress.state.value}"
    return f"pipeline {pipeline_id} is not waiting for a decision ({why})"


def timeout_decision(approval: ApprovalProgress, timeout: str) -> ApprovalProgress:
    """What the gate's ``on_timeout`` policy decides when nobody answered in time."""
    count = len(approval.shown)
    approve = approval.on_timeout == "approve"
    return approval.model_copy(
        update={
            "status": ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED,
            "chosen": list(range(min(approval.choose or count, count))) if approve else [],
            "timed_out": True,
            "comment": f"no decision within {timeout}",
        }
    )


def rejection(name: str, rejected: dict[str, ApprovalProgress], cost: object) -> ApplicationError:
    """The run's failure when a person (or a gate's timeout) said no: it says who and why."""
    reasons = []
    for gate, approval in rejected.items():
        if approval.timed_out:
            who = approval.comment or "no decision in time"
        else:
            who = f"by {approval.decided_by}"
            who += f": {approval.comment!r}" if approval.comment else ""
        reasons.append(f"gate {gate} rejected {who}")
    return ApplicationError(
        f"pipeline {name} stopped: {'; '.join(reasons)}. Nothing after the gate ran and its hold "
        f"was released (charged ${cost}). Resume it to ask again without paying again for the "
        "steps before the gate.",
        {
            "rejected_gates": list(rejected),
            "decided_by": [a.decided_by for a in rejected.values()],
        },
        type="Rejected",
        non_retryable=True,
    )
