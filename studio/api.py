"""The backend's entry points: start durable image operations and get stored results back.

The functions mirror the seed system's unified entry points (``generate_image``,
``generate_character_image``, ``generate_image_edit``, ``generate_image_upscale``,
``generate_image_to_3d``, ``generate_face_swap``, ``generate_image_translate``) plus the utility
edits, but each runs as a Temporal workflow: it survives restarts, pays once and can be read in the
Temporal UI. Every function has a ``start_`` twin that returns a handle without waiting.

Images may be given as bytes, file paths, https URLs, data URIs or ``BlobRef``s; they enter the
blob store first. Bad input raises ``InvalidRequestError`` naming the field before anything starts;
a refused quota raises ``QuotaExceededError`` (the seed's 429 detail); a failed run raises
``OperationFailedError`` (nothing charged).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from providers.catalogue import (
    Catalogue,
    ImageRole,
    Operation,
    Recommendation,
    load_catalogue,
    recommend_model,
)
from studio.blobs import BlobStore
from studio.contracts import BlobRef, OperationProgress, OperationRequest, OperationResult
from studio.errors import FieldError, InvalidRequestError
from studio.ingest import ImageIngestor, ImageSource
from studio.ledger.blob_owners import BlobOwners
from studio.ledger.db import shared_engine
from studio.options import GenerateOptions, OperationOptions, parse_options
from studio.outcomes import failure_from_workflow
from studio.pipelines.client import DefinitionSource, PipelineClient, PipelineHandle, PipelineQuote
from studio.pipelines.contracts import PipelineResult
from studio.pricing import CostEstimate, EstimateItem, estimate_cost
from studio.requests import compose_request
from studio.search import (
    STUDIO_MODEL,
    STUDIO_OPERATION,
    STUDIO_PIPELINE,
    STUDIO_STATUS,
    STUDIO_USER,
)
from studio.settings import StudioSettings, get_settings
from studio.temporal import connect, temporal_client, ui_url
from workflows.operation import ImageOperationWorkflow

Options = OperationOptions | dict[str, Any] | None
P = ParamSpec("P")


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


def _waiting(
    start: Callable[Concatenate[Studio, P], Awaitable[OperationHandle]],
) -> Callable[Concatenate[Studio, P], Awaitable[OperationResult]]:
    """The waiting twin of a ``start_`` method: same arguments, returns the result."""

    @functools.wraps(start)
    async def run(self: Studio, *args: P.args, **kwargs: P.kwargs) -> OperationResult:
        return await (await start(self, *args, **kwargs)).result()

    run.__name__ = run.__qualname__ = start.__name__.removeprefix("start_")
    run.__doc__ = f"Like ``{start.__name__}``, but waits and returns the stored result."
    return run


class Studio:
    """Holds a Temporal client and the blob store; one per process is plenty.

    Without a client (``Studio(None, settings)``) it still validates, quotes and estimates.
    """

    def __init__(
        self,
        client: Client | None,
        settings: StudioSettings | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.client = client
        self.settings = settings or get_settings()
        self.catalogue = catalogue or load_catalogue()
        self.blobs = BlobStore(self.settings.blob_root, max_pixels=self.settings.max_input_pixels)
        self._ingestor = ImageIngestor(self.blobs, self.settings)
        self.pipelines = PipelineClient(
            client, self.settings, self.catalogue, self.blobs, self._ingestor
        )

    @classmethod
    async def connect(cls, settings: StudioSettings | None = None) -> Studio:
        settings = settings or get_settings()
        return cls(await connect(settings), settings)

    # ------------------------------------------------------------------ generic

    async def build_request(
        self,
        operation: Operation,
        user_id: str | None,
        options: Options = None,
        *,
        prompt: str | None = None,
        images: Mapping[ImageRole, ImageSource | Sequence[ImageSource] | None] | None = None,
        params: Mapping[str, Any] | None = None,
        label: str | None = None,
        options_type: type[OperationOptions] = OperationOptions,
        pipeline_id: str | None = None,
        step: str | None = None,
        operation_id: str | None = None,
    ) -> OperationRequest:
        """Validate and normalise a request for any operation (no workflow is started)."""
        opts = parse_options(options_type, options)
        if options_type is OperationOptions or prompt is None:
            self.catalogue.resolve(operation, opts.model)  # unknown model fails before any upload
        return compose_request(
            self.catalogue,
            operation,
            user_id,
            opts,
            prompt=prompt,
            images=await self._ingest(images or {}, user_id),
            params=params,
            label=label,
            operation_id=operation_id,
            pipeline_id=pipeline_id,
            step=step,
        )

    async def _ingest(
        self,
        images: Mapping[ImageRole, ImageSource | Sequence[ImageSource] | None],
        user_id: str | None,
    ) -> dict[ImageRole, BlobRef | list[BlobRef]]:
        refs: dict[ImageRole, BlobRef | list[BlobRef]] = {}
        for role, source in images.items():
            if source is None:
                continue
            field = f"images.{role.value}"
            if isinstance(source, (list, tuple)):
                refs[role] = [
                    await self._ingestor.ingest(s, field=f"{field}[{i}]")
                    for i, s in enumerate(source)
                ]
            else:
                refs[role] = await self._ingestor.ingest(source, field=field)
        if user_id and refs:  # the caller may read back what it uploaded
            shas = [
                r.sha256
                for value in refs.values()
                for r in (value if isinstance(value, list) else [value])
            ]
            await asyncio.to_thread(self.owners().grant, user_id, shas)
        return refs

    def owners(self) -> BlobOwners:
        return BlobOwners(shared_engine(self.settings.ledger_url, self.settings.auto_migrate))

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
        client = temporal_client(self.client)
        try:
            handle = await client.start_workflow(
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
        except WorkflowAlreadyStartedError:
            # The same idempotency key after the run finished: that run is the answer.
            handle = client.get_workflow_handle_for(
                ImageOperationWorkflow.run, request.operation_id
            )
        return OperationHandle(handle, request, ui_url(self.settings, request.operation_id))

    async def run_operation(self, request: OperationRequest) -> OperationResult:
        return await (await self.start_operation(request)).result()

    def estimate(
        self, requests: OperationRequest | EstimateItem | Iterable[OperationRequest | EstimateItem]
    ) -> CostEstimate:
        """The price of requests before anything runs, from the catalogue."""
        return estimate_cost(self.catalogue, requests)

    def recommend(self, operation: Operation, **constraints: Any) -> Recommendation:
        return recommend_model(self.catalogue, operation, **constraints)

    # ------------------------------------------------------------------ pipelines

    async def quote_pipeline(
        self, definition: DefinitionSource, user_id: str, *, resume_of: str | None = None
    ) -> PipelineQuote:
        """Price a pipeline before it runs; for a resume, only the steps that must run again."""
        return await self.pipelines.quote(definition, user_id, resume_of=resume_of)

    async def start_pipeline(
        self, definition: DefinitionSource, user_id: str, *, resume_of: str | None = None
    ) -> PipelineHandle:
        """Validate, reserve the quote and start a pipeline; each step runs as a child operation."""
        return await self.pipelines.start(definition, user_id, resume_of=resume_of)

    async def run_pipeline(self, definition: DefinitionSource, user_id: str) -> PipelineResult:
        return await (await self.start_pipeline(definition, user_id)).result()

    async def resume_pipeline(self, pipeline_id: str) -> PipelineHandle:
        """Run a failed or cancelled pipeline again, paying only for steps that must run again."""
        return await self.pipelines.resume(pipeline_id)

    def pipeline(self, pipeline_id: str) -> PipelineHandle:
        return self.pipelines.handle(pipeline_id)

    # ------------------------------------------------------------------ the operations

    async def start_generate_image(
        self, prompt: str, options: Options = None, user_id: str | None = None
    ) -> OperationHandle:
        """Text-to-image, with Create Studio templates, presets, styles, quality tiers and variations."""
        return await self.start_operation(
            await self.build_request(
                Operation.TEXT_TO_IMAGE,
                user_id,
                options,
                prompt=prompt,
                label="text to image",
                options_type=GenerateOptions,
            )
        )

    async def start_generate_character_image(
        self,
        prompt: str,
        reference_image: ImageSource,
        user_id: str | None = None,
        options: Options = None,
    ) -> OperationHandle:
        """A new image of the character in ``reference_image`` (style, aspect_ratio, rendering_speed in ``extra``)."""
        return await self._start(
            Operation.CHARACTER,
            user_id,
            options,
            prompt=prompt,
            images={ImageRole.REFERENCE: reference_image},
            label="character image",
        )

    async def start_generate_image_edit(
        self,
        image: ImageSource,
        prompt: str,
        user_id: str | None = None,
        options: Options = None,
        *,
        mask: ImageSource | None = None,
        references: Sequence[ImageSource] = (),
    ) -> OperationHandle:
        """Edit ``image`` as ``prompt`` says; a mask (white = change) where the model takes one."""
        images: dict[ImageRole, Any] = {ImageRole.BASE: image, ImageRole.MASK: mask}
        if references:
            images[ImageRole.REFERENCE] = list(references)
        return await self._start(
            Operation.EDIT, user_id, options, prompt=prompt, images=images, label="edit"
        )

    async def start_generate_image_upscale(
        self,
        image: ImageSource,
        user_id: str | None = None,
        options: Options = None,
        *,
        target_resolution: str | None = None,
    ) -> OperationHandle:
        """Upscale ``image`` (``target_resolution`` 2k/4k/8k where the model takes it)."""
        return await self._start(
            Operation.UPSCALE,
            user_id,
            options,
            images={ImageRole.BASE: image},
            params={"target_resolution": target_resolution},
            label=f"upscale {target_resolution or ''}".strip(),
        )

    async def start_generate_image_to_3d(
        self,
        image: ImageSource,
        user_id: str | None = None,
        options: Options = None,
        *,
        views: Mapping[str, ImageSource] | None = None,
        prompt: str | None = None,
    ) -> OperationHandle:
        """A 3D model (GLB and friends) from ``image``; multi-view models take ``views`` back/left/right."""
        spec = self.catalogue.resolve(
            Operation.IMAGE_TO_3D, parse_options(OperationOptions, options).model
        )
        main = next(
            (
                r
                for r in (ImageRole.BASE, ImageRole.SKETCH, ImageRole.FRONT)
                if spec.field_for_role(r)
            ),
            ImageRole.BASE,
        )
        images: dict[ImageRole, Any] = {main: image}
        for name, source in (views or {}).items():
            try:
                images[ImageRole(name)] = source
            except ValueError:
                raise InvalidRequestError(
                    "unknown view",
                    [FieldError(f"views.{name}", "unknown view", "front, back, left or right")],
                ) from None
        return await self._start(
            Operation.IMAGE_TO_3D,
            user_id,
            options,
            prompt=prompt,
            images=images,
            label="image to 3D",
        )

    async def start_generate_text_to_3d(
        self, prompt: str, user_id: str | None = None, options: Options = None
    ) -> OperationHandle:
        """A 3D model from a text prompt."""
        return await self._start(
            Operation.TEXT_TO_3D, user_id, options, prompt=prompt, label="text to 3D"
        )

    async def start_generate_face_swap(
        self,
        base_image: ImageSource,
        face_image: ImageSource,
        user_id: str | None = None,
        options: Options = None,
        *,
        target_faces: Sequence[ImageSource] = (),
    ) -> OperationHandle:
        """Put the face from ``face_image`` onto ``base_image`` (``target_faces`` picks which, where supported)."""
        images: dict[ImageRole, Any] = {ImageRole.BASE: base_image, ImageRole.FACE: face_image}
        if target_faces:
            images[ImageRole.TARGET_FACE] = list(target_faces)
        return await self._start(
            Operation.FACE_SWAP, user_id, options, images=images, label="face swap"
        )

    async def start_generate_image_translate(
        self,
        image: ImageSource,
        target_language: str,
        user_id: str | None = None,
        options: Options = None,
    ) -> OperationHandle:
        """Translate the text in ``image`` into ``target_language`` (a code like ``en`` or a name)."""
        spec = self.catalogue.resolve(
            Operation.TRANSLATE, parse_options(OperationOptions, options).model
        )
        field = next((f for f in spec.inputs if f.name in ("target_language", "target_lang")), None)
        params = {field.name: _language_value(target_language, field.values or ())} if field else {}
        return await self._start(
            Operation.TRANSLATE,
            user_id,
            options,
            images={ImageRole.BASE: image},
            params=params,
            label=f"translate to {target_language}",
        )

    async def start_erase_image(
        self,
        image: ImageSource,
        user_id: str | None = None,
        options: Options = None,
        *,
        mask: ImageSource | None = None,
        prompt: str | None = None,
    ) -> OperationHandle:
        """Remove objects (the white area of ``mask``, or what ``prompt`` names)."""
        return await self._start(
            Operation.ERASE,
            user_id,
            options,
            prompt=prompt,
            images={ImageRole.BASE: image, ImageRole.MASK: mask},
            label="erase",
        )

    async def start_expand_image(
        self,
        image: ImageSource,
        user_id: str | None = None,
        options: Options = None,
        *,
        aspect_ratio: str | None = None,
        prompt: str | None = None,
    ) -> OperationHandle:
        """Outpaint ``image`` to a wider canvas (``aspect_ratio`` where the model takes it)."""
        return await self._start(
            Operation.EXPAND,
            user_id,
            options,
            prompt=prompt,
            images={ImageRole.BASE: image},
            params={"aspect_ratio": aspect_ratio},
            label="expand",
        )

    async def start_replace_background(
        self,
        image: ImageSource,
        prompt: str | None = None,
        user_id: str | None = None,
        options: Options = None,
        *,
        reference: ImageSource | None = None,
    ) -> OperationHandle:
        """Keep the subject, generate a new background from ``prompt`` or a ``reference`` image."""
        return await self._start(
            Operation.BACKGROUND,
            user_id,
            options,
            prompt=prompt,
            images={ImageRole.BASE: image, ImageRole.REFERENCE: reference},
            label="background",
        )

    async def start_remove_image_text(
        self, image: ImageSource, user_id: str | None = None, options: Options = None
    ) -> OperationHandle:
        """Remove overlaid text from ``image``."""
        return await self._start(
            Operation.REMOVE_TEXT,
            user_id,
            options,
            images={ImageRole.BASE: image},
            label="remove text",
        )

    async def start_caption_image(
        self, image: ImageSource, user_id: str | None = None, options: Options = None
    ) -> OperationHandle:
        """Describe ``image`` in words; the caption is in ``result.texts``."""
        return await self._start(
            Operation.CAPTION, user_id, options, images={ImageRole.BASE: image}, label="caption"
        )

    async def start_optimize_prompt(
        self,
        prompt: str,
        user_id: str | None = None,
        options: Options = None,
        *,
        image: ImageSource | None = None,
    ) -> OperationHandle:
        """Rewrite ``prompt`` into a stronger one; the result is in ``result.texts``."""
        return await self._start(
            Operation.OPTIMIZE_PROMPT,
            user_id,
            options,
            prompt=prompt,
            images={ImageRole.REFERENCE: image},
            label="optimize prompt",
        )

    async def _start(
        self, operation: Operation, user_id: str | None, options: Options, **kwargs: Any
    ) -> OperationHandle:
        return await self.start_operation(
            await self.build_request(operation, user_id, options, **kwargs)
        )

    generate_image = _waiting(start_generate_image)
    generate_character_image = _waiting(start_generate_character_image)
    generate_image_edit = _waiting(start_generate_image_edit)
    generate_image_upscale = _waiting(start_generate_image_upscale)
    generate_image_to_3d = _waiting(start_generate_image_to_3d)
    generate_text_to_3d = _waiting(start_generate_text_to_3d)
    generate_face_swap = _waiting(start_generate_face_swap)
    generate_image_translate = _waiting(start_generate_image_translate)
    erase_image = _waiting(start_erase_image)
    expand_image = _waiting(start_expand_image)
    replace_background = _waiting(start_replace_background)
    remove_image_text = _waiting(start_remove_image_text)
    caption_image = _waiting(start_caption_image)
    optimize_prompt = _waiting(start_optimize_prompt)


OPERATION_FUNCTIONS = (
    "generate_image",
    "generate_character_image",
    "generate_image_edit",
    "generate_image_upscale",
    "generate_image_to_3d",
    "generate_text_to_3d",
    "generate_face_swap",
    "generate_image_translate",
    "erase_image",
    "expand_image",
    "replace_background",
    "remove_image_text",
    "caption_image",
    "optimize_prompt",
)

# ---------------------------------------------------------------------- module-level functions

_default: Studio | None = None


async def default_studio() -> Studio:
    """A process-wide ``Studio`` connected from the environment on first use."""
    global _default
    if _default is None:
        _default = await Studio.connect()
    return _default


def _module_function(name: str) -> Callable[..., Awaitable[Any]]:
    method = getattr(Studio, name)

    @functools.wraps(method)
    async def call(*args: Any, studio: Studio | None = None, **kwargs: Any) -> Any:
        return await getattr(studio or await default_studio(), name)(*args, **kwargs)

    return call


for _name in OPERATION_FUNCTIONS:
    globals()[_name] = _module_function(_name)
    globals()[f"start_{_name}"] = _module_function(f"start_{_name}")


# ---------------------------------------------------------------------- helpers

LANGUAGE_NAMES = {
    "en": "english",
    "zh": "chinese-simplified",
    "ja": "japanese",
    "ko": "korean",
    "fr": "french",
    "de": "german",
    "es": "spanish",
    "ru": "russian",
    "ar": "arabic",
}


def _language_value(language: str, allowed: Sequence[str | int]) -> str:
    """``en`` or ``english``, whichever spelling the model's field takes."""
    wanted = language.strip().lower()
    if wanted in allowed:
        return wanted
    by_name = {v: k for k, v in LANGUAGE_NAMES.items()}
    for candidate in (LANGUAGE_NAMES.get(wanted), by_name.get(wanted)):
        if candidate in allowed:
            return candidate  # type: ignore[return-value]
    return wanted


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


__all__ = [
    "GenerateOptions",
    "OperationHandle",
    "OperationOptions",
    "Studio",
    "default_studio",
    *OPERATION_FUNCTIONS,
    *(f"start_{n}" for n in OPERATION_FUNCTIONS),
]
