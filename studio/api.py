"""The backend's entry points: start durable image operations and get stored results back.

``generate_image(prompt, options, user_id)`` keeps the seed system's shape but runs as a Temporal
workflow: it survives restarts, pays once, and can be read in the Temporal UI. Every function has
a ``start_`` twin that returns a handle without waiting. Bad input raises ``InvalidRequestError``
naming the field before anything starts; a refused quota raises ``QuotaExceededError`` with the
seed's 429 detail; a failed run raises ``OperationFailedError`` (nothing charged).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from providers.catalogue import Catalogue, Operation, load_catalogue
from studio.contracts import OperationProgress, OperationRequest, OperationResult
from studio.errors import FieldError, InvalidRequestError, OperationFailedError, QuotaExceededError
from studio.requests import build_inputs, make_request, parse_size
from studio.search import (
    STUDIO_MODEL,
    STUDIO_OPERATION,
    STUDIO_PIPELINE,
    STUDIO_STATUS,
    STUDIO_USER,
)
from studio.settings import StudioSettings, get_settings
from studio.temporal import connect, ui_url
from workflows.operation import ImageOperationWorkflow


class GenerateOptions(BaseModel):
    """Options of ``generate_image`` (text-to-image)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    """Catalogue id; default: the first text-to-image model of the catalogue."""
    width: int | None = Field(default=None, ge=1, le=16384)
    height: int | None = Field(default=None, ge=1, le=16384)
    size: str | None = None
    """``"W*H"``; alternative to width/height."""
    negative_prompt: str | None = None
    seed: int | None = None
    output_format: str | None = None
    num_variations: int = Field(default=1, ge=1, le=10)
    extra: dict[str, Any] = Field(default_factory=dict)
    """Any other model-native field, checked against the model's schema."""
    idempotency_key: str | None = None
    """Same key, same user, same operation: the same run, never a second one."""

    def output_size(self) -> tuple[int, int] | None:
        if self.size:
            return parse_size(self.size)
        if self.width or self.height:
            if not (self.width and self.height):
                missing = "height" if self.width else "width"
                raise InvalidRequestError(
                    "size needs both sides",
                    [FieldError(f"options.{missing}", "required with the other side")],
                )
            return self.width, self.height
        return None


@dataclass
class OperationHandle:
    """A running (or finished) operation: wait for it, watch it, cancel it."""

    handle: WorkflowHandle[Any, OperationResult]
    request: OperationRequest
    ui_url: str

    @property
    def workflow_id(self) -> str:
        return self.handle.id

    async def result(self) -> OperationResult:
        try:
            return await self.handle.result()
        except WorkflowFailureError as exc:
            raise failure_from_workflow(exc, self.handle.id) from None

    async def progress(self) -> OperationProgress:
        return await self.handle.query(ImageOperationWorkflow.progress)

    async def cancel(self) -> None:
        await self.handle.cancel()


class Studio:
    """Holds a Temporal client; one per process is plenty."""

    def __init__(
        self,
        client: Client,
        settings: StudioSettings | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.client = client
        self.settings = settings or get_settings()
        self.catalogue = catalogue or load_catalogue()

    @classmethod
    async def connect(cls, settings: StudioSettings | None = None) -> Studio:
        settings = settings or get_settings()
        return cls(await connect(settings), settings)

    # ------------------------------------------------------------------ generic

    async def start_operation(self, request: OperationRequest) -> OperationHandle:
        """Start the workflow for a validated request (idempotent per operation id)."""
        spec = self.catalogue.get(request.model_id)
        summary = f"{request.label or request.operation} · {spec.path} · user {request.user_id}"
        attributes = [
            SearchAttributePair(STUDIO_USER, request.user_id),
            SearchAttributePair(STUDIO_OPERATION, request.operation),
            SearchAttributePair(STUDIO_MODEL, request.model_id),
            SearchAttributePair(STUDIO_STATUS, "running"),
        ]
        if request.pipeline_id:
            attributes.append(SearchAttributePair(STUDIO_PIPELINE, request.pipeline_id))
        handle = await self.client.start_workflow(
            ImageOperationWorkflow.run,
            request,
            id=request.operation_id,
            task_queue=self.settings.task_queue,
            search_attributes=TypedSearchAttributes(attributes),
            static_summary=summary.encode()[:200].decode(errors="ignore"),
            static_details=_static_details(request, spec.path, spec.price_usd),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        return OperationHandle(handle, request, ui_url(self.settings, request.operation_id))

    async def run_operation(self, request: OperationRequest) -> OperationResult:
        return await (await self.start_operation(request)).result()

    def handle(self, workflow_id: str, request: OperationRequest) -> OperationHandle:
        return OperationHandle(
            self.client.get_workflow_handle_for(ImageOperationWorkflow.run, workflow_id),
            request,
            ui_url(self.settings, workflow_id),
        )

    # ------------------------------------------------------------------ text to image

    def text_to_image_request(
        self, prompt: str, options: GenerateOptions | dict[str, Any] | None, user_id: str | None
    ) -> OperationRequest:
        opts = _options(GenerateOptions, options)
        params = {
            "negative_prompt": opts.negative_prompt,
            "seed": opts.seed,
            "output_format": opts.output_format,
            **opts.extra,
        }
        return make_request(
            self.catalogue,
            Operation.TEXT_TO_IMAGE,
            user_id=user_id,
            model=opts.model,
            inputs_for=functools.partial(
                build_inputs, prompt=prompt, size=opts.output_size(), params=params
            ),
            num_variations=opts.num_variations,
            idempotency_key=opts.idempotency_key,
            label="text to image",
        )

    async def start_generate_image(
        self,
        prompt: str,
        options: GenerateOptions | dict[str, Any] | None = None,
        user_id: str | None = None,
    ) -> OperationHandle:
        return await self.start_operation(self.text_to_image_request(prompt, options, user_id))

    async def generate_image(
        self,
        prompt: str,
        options: GenerateOptions | dict[str, Any] | None = None,
        user_id: str | None = None,
    ) -> OperationResult:
        return await (await self.start_generate_image(prompt, options, user_id)).result()


# ---------------------------------------------------------------------- module-level functions

_default: Studio | None = None


async def default_studio() -> Studio:
    """A process-wide ``Studio`` connected from the environment on first use."""
    global _default
    if _default is None:
        _default = await Studio.connect()
    return _default


async def generate_image(
    prompt: str,
    options: GenerateOptions | dict[str, Any] | None = None,
    user_id: str | None = None,
    *,
    studio: Studio | None = None,
) -> OperationResult:
    """Text-to-image, durably: returns stored images by reference once they are ours."""
    return await (studio or await default_studio()).generate_image(prompt, options, user_id)


async def start_generate_image(
    prompt: str,
    options: GenerateOptions | dict[str, Any] | None = None,
    user_id: str | None = None,
    *,
    studio: Studio | None = None,
) -> OperationHandle:
    return await (studio or await default_studio()).start_generate_image(prompt, options, user_id)


# ---------------------------------------------------------------------- helpers


def _options(model: type[BaseModel], value: Any) -> Any:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value or {})
    except ValidationError as exc:
        raise InvalidRequestError(
            "invalid options",
            [
                FieldError("options." + ".".join(str(p) for p in e["loc"]), e["msg"])
                for e in exc.errors()
            ],
        ) from None


def _static_details(request: OperationRequest, path: str, price: Any) -> str:
    fields = ", ".join(f"`{k}`" for k in sorted(request.inputs))
    lines = [
        f"**{request.operation}** with `{request.model_id}` (`{path}`), ${price} per result",
        f"- user: `{request.user_id}`; variations: {request.num_variations}",
        f"- inputs: {fields}",
    ]
    if request.pipeline_id:
        lines.append(f"- pipeline: `{request.pipeline_id}`, step `{request.step}`")
    return "\n".join(lines)


def failure_from_workflow(exc: WorkflowFailureError, workflow_id: str) -> Exception:
    """Map a workflow failure to the error the backend can act on."""
    cause: BaseException | None = exc.cause
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, CancelledError):
        return OperationFailedError(
            "the operation was cancelled; nothing was charged",
            failure_type="Cancelled",
            workflow_id=workflow_id,
        )
    if not isinstance(cause, ApplicationError):
        return OperationFailedError(str(cause or exc), workflow_id=workflow_id)
    details = list(cause.details)
    if cause.type == "InvalidRequest" and details and isinstance(details[0], dict):
        errors = [
            FieldError(e["field"], e["message"], e.get("allowed"))
            for e in details[0].get("errors", [])
        ]
        return InvalidRequestError(cause.message.split(":")[0], errors)
    if cause.type == "QuotaExceeded" and details and isinstance(details[0], dict):
        return QuotaExceededError(details[0])
    codes = details[0].get("provider_codes", []) if details and isinstance(details[0], dict) else []
    return OperationFailedError(
        cause.message,
        failure_type=cause.type,
        provider_code=codes[0] if codes else None,
        workflow_id=workflow_id,
    )


__all__ = [
    "GenerateOptions",
    "OperationHandle",
    "Studio",
    "generate_image",
    "start_generate_image",
]
