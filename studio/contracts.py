"""Everything that crosses a Temporal boundary: workflow inputs/results and activity arguments.

Image bytes never appear here (Temporal payloads are limited to 2 MB and history is forever): files
travel as ``BlobRef``s. Secrets never appear here either: workers read the API key from their
environment. Keep these models small and stable; adding an optional field is safe, renaming is not.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, ConfigDict, Field

SHA256_PATTERN = r"^[0-9a-f]{64}$"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BlobRef(Frozen):
    """A stored file, by content: where it is and what it is, never its bytes."""

    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0)
    media_type: str
    """IANA media type, verified against the bytes when stored (``image/png``, ``model/gltf-binary``)."""
    location: str
    """Where the blob store keeps it, e.g. ``file:///var/lib/studio/blobs/ab/abcd...``."""
    width: int | None = None
    height: int | None = None
    format: str | None = None
    """Short format name: ``png``, ``jpeg``, ``webp``, ``glb``, ``obj``..."""

    @property
    def path(self) -> Path | None:
        """The local file, when the blob store is a directory on this machine."""
        parsed = urlparse(self.location)
        return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


class OutputKind(StrEnum):
    IMAGE = "image"
    MODEL_3D = "model_3d"
    TEXT = "text"


class OperationRequest(Frozen):
    """What the backend asked for, validated against the catalogue before the workflow starts."""

    operation_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,120}$")
    """Stable id of this operation: the idempotency key of its reservation, submission and charge."""
    user_id: str = Field(pattern=r"^[A-Za-z0-9._@:-]{1,120}$")
    operation: str
    model_id: str
    inputs: dict[str, Any]
    """Model-native fields (catalogue names); image fields hold ``BlobRef`` dicts."""
    num_variations: int = Field(default=1, ge=1, le=10)
    vary_seed: bool = True
    """With a fixed ``seed`` input, variation i uses ``seed + i`` (the seed system's rule)."""
    pipeline_id: str | None = None
    step: str | None = None
    budget_reservation_id: str | None = None
    """Set by a pipeline that already reserved this step's budget; the step draws from it."""
    label: str | None = None
    """Short human label for the UI summary (e.g. ``upscale 4k``)."""


class PollPolicy(Frozen):
    """When to ask WaveSpeed about a prediction; see ``activities.wait.next_poll_delay``."""

    quick_check_seconds: float = 0.5
    """One early look, so fast jobs are not held back to the model's typical duration."""
    expected_seconds: float = 10.0
    """The model's typical duration: the next look after the quick check."""
    growth: float = 0.6
    """After that, wait ``growth`` x time since submit: polls thin out geometrically."""
    min_interval_seconds: float = 1.0
    max_interval_seconds: float = 30.0
    timeout_seconds: float = 600.0
    """Give up waiting after this long (the model's category sets it)."""
    webhook_fallback_seconds: float | None = None
    """With webhooks on: after the first look, wait this long before polling as a fallback."""


class PreparedOperation(Frozen):
    """The request after pre-flight: validated, priced and reserved."""

    request: OperationRequest
    model_path: str
    inputs: dict[str, Any]
    output_kind: OutputKind
    output_format: str | None = None
    unit_price_usd: Decimal
    quantity: int
    quota_category: str
    reservation_id: str
    poll: PollPolicy
    deterministic: bool = False
    attempt_timeout_seconds: float = 60.0
    """Limit on one submit/poll attempt; a crashed worker's attempt is retried after it."""
    provider_resubmits: int = 1
    """Fresh predictions allowed after WaveSpeed fails one with a retryable 5xxx code."""
    submit_task_queue: str | None = None
    """The rate-limited queue for paid submits, when one is configured."""
    takes_seed: bool = False
    """The model has a ``seed`` input (variations then get distinct seeds)."""


class UploadedInputs(Frozen):
    """Model inputs with every ``BlobRef`` replaced by a URL WaveSpeed can fetch."""

    inputs: dict[str, Any]
    uploaded: int = 0
    reused: int = 0


class SubmitRequest(Frozen):
    submission_id: str
    """``{operation_id}/v{variation}/a{attempt}``: unique per paid prediction we intend."""
    operation_id: str
    user_id: str
    model_path: str
    body: dict[str, Any]


class Submission(Frozen):
    submission_id: str
    prediction_id: str
    submitted_at: datetime
    reconciled: bool = False
    """True when an ambiguous earlier attempt was matched in WaveSpeed's prediction list."""


class PredictionStatus(StrEnum):
    CREATED = "created"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    DELETED = "deleted"


TERMINAL_STATUSES = frozenset(
    {
        PredictionStatus.COMPLETED,
        PredictionStatus.FAILED,
        PredictionStatus.CANCELLED,
        PredictionStatus.TIMEOUT,
        PredictionStatus.DELETED,
    }
)


class StoreRequest(Frozen):
    prediction_id: str
    user_id: str
    outputs: list[Any]
    output_kind: OutputKind
    expected_format: str | None = None


class StoredOutput(Frozen):
    kind: OutputKind
    blob: BlobRef | None = None
    text: str | None = None


class WaitRequest(Frozen):
    prediction_id: str
    submitted_at: datetime
    poll: PollPolicy
    operation_id: str
    store: StoreRequest | None = None
    """Store the outputs in the same attempt that sees the prediction complete (one round trip
    fewer); ``outputs`` in it is ignored (the poll supplies them)."""


class PredictionOutcome(Frozen):
    prediction_id: str
    status: PredictionStatus
    outputs: list[Any] = Field(default_factory=list)
    """URL strings (or text for text models), as WaveSpeed returned them."""
    error: str = ""
    code: int | None = None
    """WaveSpeed's task error code for a failed prediction (1xxx: fix the request; 5xxx: retry)."""
    inference_ms: int | None = None
    has_nsfw_contents: list[bool] = Field(default_factory=list)
    polls: int = 0
    stored: list[StoredOutput] | None = None
    """Outputs already in our blob store (when the wait stored them on sight)."""
    store_error: str | None = None
    """Why the outputs could not be kept (expired, not the promised kind): not delivered."""


class VariationStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REUSED = "reused"


class VariationResult(Frozen):
    index: int
    status: VariationStatus
    prediction_ids: list[str] = Field(default_factory=list)
    outputs: list[StoredOutput] = Field(default_factory=list)
    error: str | None = None
    provider_code: int | None = None


class SettleRequest(Frozen):
    operation_id: str
    reservation_id: str
    user_id: str
    units_charged: int
    """Variations that delivered a result: the user pays for these only."""
    unit_price_usd: Decimal
    predictions: list[str]
    """Predictions whose results were delivered (provider cost, charged to the user)."""
    delivered_blobs: list[str] = Field(default_factory=list)
    """sha256 of every delivered file: the user may read them once paid for."""
    undelivered_predictions: list[str] = Field(default_factory=list)
    """Completed at WaveSpeed (billed to us) but not delivered: provider cost only."""
    failed_predictions: list[str] = Field(default_factory=list)
    """Ended failed at WaveSpeed: provider cost only if the provider bills failures."""
    model_id: str
    operation: str


class Settlement(Frozen):
    operation_id: str
    charged_usd: Decimal
    released_usd: Decimal
    already_settled: bool = False


class ReleaseRequest(Frozen):
    operation_id: str
    reservation_id: str
    reason: str
    undelivered_predictions: list[str] = Field(default_factory=list)
    failed_predictions: list[str] = Field(default_factory=list)
    model_id: str | None = None


class OperationResult(Frozen):
    """What the backend gets back: stored outputs by reference, the cost and where to look."""

    operation_id: str
    workflow_id: str
    user_id: str
    operation: str
    model_id: str
    variations: list[VariationResult]
    cost_usd: Decimal
    prediction_ids: list[str]

    @property
    def outputs(self) -> list[StoredOutput]:
        return [o for v in self.variations for o in v.outputs]

    @property
    def blobs(self) -> list[BlobRef]:
        return [o.blob for o in self.outputs if o.blob is not None]

    @property
    def texts(self) -> list[str]:
        return [o.text for o in self.outputs if o.text is not None]

    @property
    def succeeded(self) -> list[VariationResult]:
        return [v for v in self.variations if v.status != VariationStatus.FAILED]

    @property
    def failed(self) -> list[VariationResult]:
        return [v for v in self.variations if v.status == VariationStatus.FAILED]


class OperationPhase(StrEnum):
    PENDING = "pending"
    RESERVED = "reserved"
    UPLOADING = "uploading"
    SUBMITTED = "submitted"
    WAITING = "waiting"
    STORING = "storing"
    SETTLING = "settling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OperationProgress(Frozen):
    """Answer to the ``progress`` query: cheap, leaves no history."""

    operation_id: str
    user_id: str = ""
    phase: OperationPhase
    model_id: str
    prediction_ids: list[str] = Field(default_factory=list)
    variations_done: int = 0
    variations_total: int = 1
    cost_usd: Decimal = Decimal("0")
    detail: str = ""
