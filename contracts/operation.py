"""Everything that crosses a Temporal boundary: workflow inputs/results and activity arguments.

Image bytes never appear here (Temporal payloads are limited to 2 MB and history is forever): files
travel as ``BlobRef``s. Secrets never appear here either: workers read the API key from their
environment. Keep these models small and stable; adding an optional field is safe, renaming is not.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

SHA256_PATTERN = r"^[0-9a-f]{64}$"


class Frozen(BaseModel):
    """Base of every boundary model: immutable, and unknown fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def blob_location(sha256: str) -> str:
    """The only location a ``BlobRef`` carries: ``blob:<sha256>``, valid on every host."""
    return f"blob:{sha256}"


class BlobRef(Frozen):
    """A stored file, by content: what it is and its content address, never its bytes.

    The location is always ``blob:<sha256>``: whichever store holds the bytes (a local directory,
    S3), every worker and the API find them by hash, and no server path reaches a result,
    a workflow payload or history.
    """

    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0)
    media_type: str
    """IANA media type, verified against the bytes when stored (``image/png``, ``model/gltf-binary``)."""
    location: str = ""
    """``blob:<sha256>`` (derived from the hash; anything else given is replaced)."""
    width: int | None = None
    height: int | None = None
    format: str | None = None
    """Short format name: ``png``, ``jpeg``, ``webp``, ``glb``, ``obj``..."""

    @model_validator(mode="before")
    @classmethod
    def _content_address(cls, data: Any) -> Any:
        # Histories recorded before the blob protocol carry ``file://`` paths: they replay as
        # content addresses, and nothing new can smuggle a path (or a URL) in.
        if isinstance(data, dict) and isinstance(data.get("sha256"), str):
            return {**data, "location": blob_location(data["sha256"])}
        return data


def blob_refs(inputs: dict[str, Any]) -> list[tuple[str, BlobRef]]:
    """Every image in model inputs as ``(field name, BlobRef)``, in field order.

    Image fields hold ``BlobRef`` dicts (one, or a list of them); other values are skipped.
    """
    refs: list[tuple[str, BlobRef]] = []
    for name, value in inputs.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, dict) and "sha256" in item:
                refs.append((name, BlobRef.model_validate(item)))
    return refs


class OutputKind(StrEnum):
    """What a model produces; the store verifies the files are of this kind."""

    IMAGE = "image"
    MODEL_3D = "model_3d"
    TEXT = "text"


class RouteEntry(Frozen):
    """A fallback of a route: another model (perhaps of another provider) with its own inputs."""

    model_id: str
    inputs: dict[str, Any]


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
    idempotency_key: str | None = Field(default=None, max_length=255)
    """The caller's key, if any (the id is a digest of it; the key itself is kept for people)."""
    fingerprint: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """sha256 of what the caller asked for: the same key with another request is refused."""
    fallbacks: list[RouteEntry] = Field(default_factory=list, max_length=4)
    """The rest of a route (``provider="auto"``), tried in order only when the previous entry
    provably ran nothing; pre-flight reserves the most expensive entry (docs/providers.md)."""


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


class RouteStep(Frozen):
    """One validated entry of a route: who runs it, with what, at what price."""

    model_id: str
    provider: str
    model_path: str
    inputs: dict[str, Any]
    unit_price_usd: Decimal
    output_format: str | None = None
    synchronous: bool = False
    takes_seed: bool = False
    poll: PollPolicy = Field(default_factory=PollPolicy)


class RouteAttempt(Frozen):
    """One hop of a route for one variation, as the result and the UI show it."""

    provider: str
    model_id: str
    outcome: str
    """``delivered``, ``down: <why>`` (fell back) or ``failed: <why>``."""


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
    provider: str = "wavespeed"
    synchronous: bool = False
    """The provider answers the image in the POST response (see ``RouteStep``)."""
    route: list[RouteStep] = Field(default_factory=list)
    """Every entry of a route, the first being the fields above; empty for a single WaveSpeed
    model (the path runs recorded before routes took). ``unit_price_usd`` is then the ceiling."""


class UploadedInputs(Frozen):
    """Model inputs with every ``BlobRef`` replaced by a URL WaveSpeed can fetch."""

    inputs: dict[str, Any]
    uploaded: int = 0
    reused: int = 0


class SubmitRequest(Frozen):
    """Input of the submit activity: one paid prediction we intend, with its request body."""

    submission_id: str
    """``{operation_id}/v{variation}/a{attempt}``: unique per paid prediction we intend."""
    operation_id: str
    user_id: str
    model_path: str
    body: dict[str, Any]
    look: StoreRequest | None = None
    """Look once right after the POST (the prediction id already recorded) and, if it is done,
    store its outputs: a fast job then needs no wait activity and no extra workflow task. Its
    ``prediction_id`` and ``outputs`` are filled in by the look."""
    provider: str = "wavespeed"
    may_fall_back: bool = False
    """A later route entry exists: after a bounded number of attempts that provably ran nothing
    (rate limited, down before accepting) the submit gives up with ``ProviderDown``."""
    price_usd: Decimal | None = None
    """The model's price: recorded as possible provider cost when a POST goes unanswered."""
    output_kind: OutputKind = OutputKind.IMAGE


class PredictionStatus(StrEnum):
    """A prediction's status as the provider reports it."""

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
    """Input of the store activity: a completed prediction's outputs to copy into the blob store."""

    prediction_id: str
    user_id: str
    outputs: list[Any]
    output_kind: OutputKind
    expected_format: str | None = None
    provider: str = "wavespeed"


class StoredOutput(Frozen):
    """One delivered output: a stored file (``blob``) or, for text models, the ``text``."""

    kind: OutputKind
    blob: BlobRef | None = None
    text: str | None = None


class WaitRequest(Frozen):
    """Input of the wait activity: which prediction to watch, and how often to ask."""

    prediction_id: str
    submitted_at: datetime
    poll: PollPolicy
    operation_id: str
    store: StoreRequest | None = None
    """Store the outputs in the same attempt that sees the prediction complete (one round trip
    fewer); ``outputs`` in it is ignored (the poll supplies them)."""
    after_hint: bool = False
    """This look was prompted by a webhook (metrics: completions by webhook vs polling)."""
    looked: bool = False
    """The submit has just looked: the first attempt waits for the schedule instead of a GET."""
    provider: str = "wavespeed"


class PredictionOutcome(Frozen):
    """What the wait activity saw, provider-neutral: the workflow decides on this alone."""

    prediction_id: str
    status: PredictionStatus
    outputs: list[Any] = Field(default_factory=list)
    """URL strings (or text for text models), as WaveSpeed returned them."""
    error: str = ""
    code: int | None = None
    """The provider's error code for a failed prediction (WaveSpeed: 1xxx fix the request, 5xxx
    provider-side); shown to people, never branched on by workflows."""
    retryable: bool = False
    """For a failed prediction: a fresh prediction may succeed (the provider's own rule, decided
    by the activity that read the outcome)."""
    reason: str = ""
    """For a failed prediction: what went wrong, in words a person can act on."""
    inference_ms: int | None = None
    has_nsfw_contents: list[bool] = Field(default_factory=list)
    polls: int = 0
    stored: list[StoredOutput] | None = None
    """Outputs already in our blob store (when the wait stored them on sight)."""
    store_error: str | None = None
    """Why the outputs could not be kept (expired, not the promised kind): not delivered."""


class Submission(Frozen):
    """A prediction the provider accepted, recorded before anything can retry."""

    submission_id: str
    prediction_id: str
    submitted_at: datetime
    reconciled: bool = False
    """True when an ambiguous earlier attempt was matched in WaveSpeed's prediction list."""
    looked: bool = False
    """The submit looked at the prediction after the POST (a wait need not look again at once)."""
    outcome: PredictionOutcome | None = None
    """What that look saw, when the prediction had already ended (outputs stored if asked)."""


class PredictionHint(Frozen):
    """A verified webhook said this prediction may be done: a reason to look, never a result.

    The workflow answers it by asking the provider (one GET through the wait activity); nothing
    in a signal is believed, because anyone who can reach the Temporal frontend can send one.
    """

    prediction_id: str = Field(min_length=1, max_length=200)


class VariationStatus(StrEnum):
    """How one variation of an operation ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REUSED = "reused"


class VariationResult(Frozen):
    """One variation: its predictions, its outputs, or why it failed."""

    index: int
    status: VariationStatus
    prediction_ids: list[str] = Field(default_factory=list)
    outputs: list[StoredOutput] = Field(default_factory=list)
    error: str | None = None
    provider_code: int | None = None
    provider: str | None = None
    """Who delivered (or last tried) this variation, on routed runs."""
    model_id: str | None = None
    attempts: list[RouteAttempt] = Field(default_factory=list)


class SettleRequest(Frozen):
    """Input of settlement: what to charge the user once, and the provider costs behind it."""

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
    requested_units: int | None = None
    """Variations asked for (fewer charged means a partial result)."""
    started_at: datetime | None = None
    """When the run started (its end-to-end latency, for metrics)."""
    charged_usd: Decimal | None = None
    """Routed runs: the delivering entries' prices added up (at most the hold); None charges
    ``units_charged`` x the held unit price."""
    delivered_prices: dict[str, Decimal] = Field(default_factory=dict)
    """Routed runs: provider cost per delivered prediction."""


class Settlement(Frozen):
    """What settlement did: charged, released, or found the operation already settled."""

    operation_id: str
    charged_usd: Decimal
    released_usd: Decimal
    already_settled: bool = False
    state: str = ""
    """The hold's state in the ledger after the call: ``settled`` (the charge committed),
    ``released`` or ``expired``. One row-locked transaction decides; the workflow obeys it.
    Empty in results recorded before this field existed (replays): there, a settlement that
    returned had charged and a release had released."""


class ReleaseRequest(Frozen):
    """Input of release: give back an operation's hold (failure or cancellation)."""

    operation_id: str
    reservation_id: str
    reason: str
    undelivered_predictions: list[str] = Field(default_factory=list)
    failed_predictions: list[str] = Field(default_factory=list)
    model_id: str | None = None
    operation: str | None = None
    cancelled: bool = False
    started_at: datetime | None = None


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
    cancel_too_late: bool = False
    """A cancel arrived after the charge had committed: the run completed and this is its
    result (the user paid for it and gets it)."""
    provider: str | None = None
    """Routed runs: the provider that delivered the first delivered variation."""
    model: str | None = None
    """Routed runs: the model that delivered it (``model_id`` is what was asked for)."""
    attempts: list[RouteAttempt] = Field(default_factory=list)
    """Routed runs: every hop of every variation, in order."""

    @property
    def outputs(self) -> list[StoredOutput]:
        """Every delivered output, variation by variation."""
        return [o for v in self.variations for o in v.outputs]

    @property
    def blobs(self) -> list[BlobRef]:
        """The stored files among the outputs."""
        return [o.blob for o in self.outputs if o.blob is not None]

    @property
    def texts(self) -> list[str]:
        """The texts among the outputs (caption and prompt models)."""
        return [o.text for o in self.outputs if o.text is not None]

    @property
    def succeeded(self) -> list[VariationResult]:
        """Variations that delivered (freshly, or reused)."""
        return [v for v in self.variations if v.status != VariationStatus.FAILED]

    @property
    def failed(self) -> list[VariationResult]:
        """Variations that failed (not charged)."""
        return [v for v in self.variations if v.status == VariationStatus.FAILED]


class OperationPhase(StrEnum):
    """Where a run is, as the ``progress`` query and the Temporal UI show it."""

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


class RunEnding(Frozen):
    """How a run ended, for the durable record that outlives Temporal's retention."""

    run_id: str
    user_id: str
    kind: str
    """operation | pipeline"""
    operation: str
    status: str
    """completed | failed | cancelled"""
    result: dict[str, Any] | None = None
    cost_usd: Decimal = Decimal(0)
    error: dict[str, Any] | None = None
    """``{"type", "message", "details"}`` of the failure the caller is shown."""
