"""Operations that create: text to image, a character, 3D models, captions, better prompts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blobs.ingest import ImageSource
from contracts.errors import FieldError, InvalidRequestError
from contracts.operation import OperationResult
from domain.options import GenerateOptions, OperationOptions, parse_options
from providers.catalogue import ImageRole, Operation
from studio.handles import OperationHandle
from studio.operations import OperationStarter, Options


class CreateOperations(OperationStarter):
    """Mixed into ``Studio``: each operation written out, with its ``start_`` twin."""

    # ------------------------------------------------------------------ text to image

    async def start_generate_image(
        self,
        prompt: str,
        *,
        user_id: str,
        options: GenerateOptions | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        provider: str | None = None,
    ) -> OperationHandle:
        """Start a text-to-image run.

        Args:
            prompt: What to draw.
            user_id: The end user the run belongs to (quota, budget, ownership).
            options: Create Studio template, aspect ratio, style, quality tier, size, seed,
                ``num_variations`` (1-10, run concurrently, only delivered ones charged).
            idempotency_key: Same key and request: the same run.
            provider: ``auto`` (the quality tier's route, falling back to its next provider
                when one provably ran nothing) or a provider name (``wavespeed``,
                ``stability``, ``huggingface``, ``gemini``): that provider's entries of the
                route. Sets ``options.provider``; unknown names are refused naming it.

        Returns:
            A handle to wait on, watch or cancel.
        """
        if provider is not None:
            options = parse_options(GenerateOptions, options).model_copy(
                update={"provider": provider}
            )
        return await self.start_request(
            Operation.TEXT_TO_IMAGE,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            label="text to image",
            options_type=GenerateOptions,
        )

    async def generate_image(
        self,
        prompt: str,
        *,
        user_id: str,
        options: GenerateOptions | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        provider: str | None = None,
    ) -> OperationResult:
        """Text-to-image, waiting for the stored result (see ``start_generate_image``)."""
        handle = await self.start_generate_image(
            prompt,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            provider=provider,
        )
        return await handle.result()

    # ------------------------------------------------------------------ character

    async def start_generate_character_image(
        self,
        prompt: str,
        reference_image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start a run that draws the character in ``reference_image`` as ``prompt`` says.

        Model-specific fields (style, aspect_ratio, rendering_speed) go in ``options.extra``.
        """
        return await self.start_request(
            Operation.CHARACTER,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images={ImageRole.REFERENCE: reference_image},
            label="character image",
        )

    async def generate_character_image(
        self,
        prompt: str,
        reference_image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """A new image of a character, waiting for the result (see the ``start_`` twin)."""
        handle = await self.start_generate_character_image(
            prompt,
            reference_image,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
        )
        return await handle.result()

    # ------------------------------------------------------------------ image to 3D

    async def start_generate_image_to_3d(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        views: Mapping[str, ImageSource] | None = None,
        prompt: str | None = None,
    ) -> OperationHandle:
        """Start a 3D model (GLB and friends) from ``image``.

        Args:
            views: Multi-view models take ``back``, ``left`` and ``right`` (and ``front``).
            prompt: Where the model takes a text hint.
        """
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
        return await self.start_request(
            Operation.IMAGE_TO_3D,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images=images,
            label="image to 3D",
        )

    async def generate_image_to_3d(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        views: Mapping[str, ImageSource] | None = None,
        prompt: str | None = None,
    ) -> OperationResult:
        """A 3D model from an image, waiting for it (see ``start_generate_image_to_3d``)."""
        handle = await self.start_generate_image_to_3d(
            image,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            views=views,
            prompt=prompt,
        )
        return await handle.result()

    # ------------------------------------------------------------------ text to 3D

    async def start_generate_text_to_3d(
        self,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start a 3D model from a text prompt."""
        return await self.start_request(
            Operation.TEXT_TO_3D,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            label="text to 3D",
        )

    async def generate_text_to_3d(
        self,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """A 3D model from text, waiting for it (see ``start_generate_text_to_3d``)."""
        handle = await self.start_generate_text_to_3d(
            prompt, user_id=user_id, options=options, idempotency_key=idempotency_key
        )
        return await handle.result()

    # ------------------------------------------------------------------ caption

    async def start_caption_image(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start describing ``image`` in words; the caption ends up in ``result.texts``."""
        return await self.start_request(
            Operation.CAPTION,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            images={ImageRole.BASE: image},
            label="caption",
        )

    async def caption_image(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Caption an image, waiting for the text (see ``start_caption_image``)."""
        handle = await self.start_caption_image(
            image, user_id=user_id, options=options, idempotency_key=idempotency_key
        )
        return await handle.result()

    # ------------------------------------------------------------------ optimize prompt

    async def start_optimize_prompt(
        self,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        image: ImageSource | None = None,
    ) -> OperationHandle:
        """Start rewriting ``prompt`` into a stronger one (``image`` as context where taken)."""
        return await self.start_request(
            Operation.OPTIMIZE_PROMPT,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images={ImageRole.REFERENCE: image},
            label="optimize prompt",
        )

    async def optimize_prompt(
        self,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        image: ImageSource | None = None,
    ) -> OperationResult:
        """Rewrite a prompt, waiting for the text (see ``start_optimize_prompt``)."""
        handle = await self.start_optimize_prompt(
            prompt,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            image=image,
        )
        return await handle.result()
