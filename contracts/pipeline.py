"""What crosses Temporal boundaries for pipelines (blob references only, never bytes)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from contracts.operation import BlobRef, Frozen, OperationRequest, StoredOutput


class PipelineRunRequest(Frozen):
    """Input of the ``ImagePipeline`` workflow: the definition to run for a user."""

    pipeline_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,160}$")
    user_id: str = Field(pattern=r"^[A-Za-z0-9._@:-]{1,120}$")
    definition: dict[str, Any]
    """A ``PipelineDefinition`` whose external files are already ``blob:<sha256>`` references."""
    resume_of: str | None = None


class StepLayout(Frozen):
    """What the workflow needs to schedule a step (it never reads the catalogue itself)."""

    name: str
    operation: str
    model_id: str | None
    depends_on: list[str]
    fan_out: str | None
    best_of: list[str] = Field(default_factory=list)
    """Upstream steps whose most detailed output this step uses."""
    planned_runs: int = 1


class PipelineReservation(Frozen):
    """What the pipeline's pre-flight decided: step layout, resolved files and the held quote."""

    steps: list[StepLayout]
    """In dependency order."""
    externals: dict[str, BlobRef] = Field(default_factory=dict)
    """``blob:<sha256>`` references of the definition, resolved."""
    quoted_usd: Decimal
    """Worst case of the steps that will run (reusable steps excluded)."""
    full_usd: Decimal
    reusable_steps: list[str] = Field(default_factory=list)
    lineage: list[str] = Field(default_factory=list)


class StepRunSpec(Frozen):
    """Input of preparing one run of a step: the step, its resolved images and prompt."""

    pipeline_id: str
    user_id: str
    step: dict[str, Any]
    run_index: int
    runs: int
    images: dict[str, list[BlobRef]] = Field(default_factory=dict)
    prompt: str | None = None
    lineage: list[str] = Field(default_factory=list)


class PreparedStep(Frozen):
    """One run of a step, ready: the operation to start, or outputs it may reuse."""

    request: OperationRequest | None
    """None for local operations (crop)."""
    fingerprint: str
    deterministic: bool
    cached: list[StoredOutput] | None = None
    cached_from: str | None = None


class StepRecord(Frozen):
    """One finished run of a step, recorded so a resume can reuse its outputs."""

    pipeline_id: str
    user_id: str
    step: str
    run_index: int
    fingerprint: str
    deterministic: bool
    outputs: list[StoredOutput]
    cost_usd: Decimal


class CropRequest(Frozen):
    """Input of the local crop step: one image and the platform formats to cut."""

    user_id: str
    image: BlobRef
    formats: list[str]


class StepState(StrEnum):
    """How far a pipeline step has got."""

    PENDING = "pending"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    """A gate waiting for a person's decision."""
    SUCCEEDED = "succeeded"
    REUSED = "reused"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    """A gate a person rejected (or that timed out with ``on_timeout: reject``)."""


FINISHED_STATES = frozenset(
    {
        StepState.SUCCEEDED,
        StepState.REUSED,
        StepState.FAILED,
        StepState.CANCELLED,
        StepState.SKIPPED,
        StepState.REJECTED,
    }
)

AWAITING_APPROVAL = "awaiting_approval"
"""The run's state (and ``StudioStatus``) while a gate waits for a person."""


class ApprovalStatus(StrEnum):
    """Where a gate's decision stands."""

    WAITING = "waiting"
    APPROVED = "approved"
    REJECTED = "rejected"
    REUSED = "reused"
    """Approved for the same outputs by an earlier run this one resumes."""


class ApprovalProgress(Frozen):
    """A gate as its reviewer sees it: what is shown, who may decide, by when, and the answer."""

    status: ApprovalStatus
    shown_steps: list[str]
    shown: list[StoredOutput]
    """Numbered from 0 in this order; a decision's ``chosen`` indexes this list."""
    choose: int | None = None
    approvers: list[str]
    prompt: str | None = None
    on_timeout: Literal["reject", "approve"] = "reject"
    waiting_since: datetime | None = None
    deadline: datetime | None = None
    decided_by: str | None = None
    """The deciding user; None when the timeout decided."""
    chosen: list[int] = Field(default_factory=list)
    comment: str | None = None
    timed_out: bool = False


class GateDecision(Frozen):
    """A person's answer at a gate: the ``decide`` Update's input (checked by its validator)."""

    user_id: str = Field(pattern=r"^[A-Za-z0-9._@:-]{1,120}$")
    decision: Literal["approve", "reject"]
    gate: str | None = Field(default=None, max_length=41)
    """Which gate; may be left out while only one waits."""
    chosen: list[int] | None = Field(default=None, max_length=50)
    """Indexes into the gate's shown outputs (from 0); exactly ``choose`` of them if it is set."""
    comment: str | None = Field(default=None, max_length=2000)


class GateOutcome(Frozen):
    """What a decision did: the ``decide`` Update's result."""

    pipeline_id: str
    gate: str
    decision: Literal["approve", "reject"]
    decided_by: str
    chosen: list[int]
    outputs: list[StoredOutput]
    """What goes on to the steps after the gate (nothing when rejected)."""


class GateRecord(Frozen):
    """An approval remembered for resumes of this run (never reused by other runs)."""

    pipeline_id: str
    user_id: str
    gate: str
    shown: list[StoredOutput]
    choose: int | None = None
    chosen: list[StoredOutput]


class GateLookup(Frozen):
    """Ask the ledger whether this gate was already decided in the run's resume chain."""

    user_id: str
    gate: str
    shown: list[StoredOutput]
    choose: int | None = None
    lineage: list[str]


class StepProgress(Frozen):
    """One step in the ``progress`` query and the pipeline's result."""

    name: str
    operation: str
    model_id: str | None = None
    state: StepState = StepState.PENDING
    runs: int = 1
    runs_done: int = 0
    reused_runs: int = 0
    cost_usd: Decimal = Decimal("0")
    outputs: list[StoredOutput] = Field(default_factory=list)
    child_workflow_ids: list[str] = Field(default_factory=list)
    error: str | None = None
    approval: ApprovalProgress | None = None
    """Gates only: what the reviewer sees and what they decided."""


class PipelineProgress(Frozen):
    """Answer to a pipeline's ``progress`` query: every step, the cost so far and the quote."""

    pipeline_id: str
    name: str
    state: str
    steps: list[StepProgress]
    cost_usd: Decimal
    quoted_usd: Decimal


class PipelineResult(Frozen):
    """What a pipeline returns: every step's outputs, what it cost and what was quoted."""

    pipeline_id: str
    name: str
    user_id: str
    steps: list[StepProgress]
    cost_usd: Decimal
    quoted_usd: Decimal
    resume_of: str | None = None

    def step(self, name: str) -> StepProgress:
        """The step named ``name`` (``StopIteration`` if the pipeline has none)."""
        return next(s for s in self.steps if s.name == name)
