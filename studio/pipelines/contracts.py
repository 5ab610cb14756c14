"""What crosses Temporal boundaries for pipelines (blob references only, never bytes)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import Field

from studio.contracts import BlobRef, Frozen, OperationRequest, StoredOutput


class PipelineRunRequest(Frozen):
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
    pipeline_id: str
    user_id: str
    step: dict[str, Any]
    run_index: int
    runs: int
    images: dict[str, list[BlobRef]] = Field(default_factory=dict)
    prompt: str | None = None
    lineage: list[str] = Field(default_factory=list)


class PreparedStep(Frozen):
    request: OperationRequest | None
    """None for local operations (crop)."""
    fingerprint: str
    deterministic: bool
    cached: list[StoredOutput] | None = None
    cached_from: str | None = None


class StepRecord(Frozen):
    pipeline_id: str
    user_id: str
    step: str
    run_index: int
    fingerprint: str
    deterministic: bool
    outputs: list[StoredOutput]
    cost_usd: Decimal


class CropRequest(Frozen):
    user_id: str
    image: BlobRef
    formats: list[str]


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    REUSED = "reused"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


FINISHED_STATES = frozenset(
    {
        StepState.SUCCEEDED,
        StepState.REUSED,
        StepState.FAILED,
        StepState.CANCELLED,
        StepState.SKIPPED,
    }
)


class StepProgress(Frozen):
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


class PipelineProgress(Frozen):
    pipeline_id: str
    name: str
    state: str
    steps: list[StepProgress]
    cost_usd: Decimal
    quoted_usd: Decimal


class PipelineResult(Frozen):
    pipeline_id: str
    name: str
    user_id: str
    steps: list[StepProgress]
    cost_usd: Decimal
    quoted_usd: Decimal
    resume_of: str | None = None

    def step(self, name: str) -> StepProgress:
        return next(s for s in self.steps if s.name == name)
