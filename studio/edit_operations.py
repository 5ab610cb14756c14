"""Operations that change an image: edit, upscale, face swap, translate, erase, expand,
background, text removal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from blobs.ingest import ImageSource
from contracts.operation import OperationResult
from domain.options import OperationOptions, parse_options
from domain.upscale import DEFAULT_UPSCALE_PROMPT, target_long_side, upscale_model
from providers.catalogue import ImageRole, Operation
from studio.handles import OperationHandle
from studio.operations import OperationStarter, Options, language_value


class EditOperations(OperationStarter):
    """Mixed into ``Studio``: each operation written out, with its ``start_`` twin."""

    # ------------------------------------------------------------------ edit

    async def start_generate_image_edit(
        self,
        image: ImageSource,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        mask: ImageSource | None = None,
        references: Sequence[ImageSource] = (),
    ) -> OperationHandle:
        """Start an edit of ``image`` as ``prompt`` says.

        Args:
            mask: White marks what to change, where the model takes a mask.
            references: Extra reference images, where the model takes them.
        """
        images: dict[ImageRole, Any] = {ImageRole.BASE: image, ImageRole.MASK: mask}
        if references:
            images[ImageRole.REFERENCE] = list(references)
        return await self.start_request(
            Operation.EDIT,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images=images,
            label="edit",
        )

    async def generate_image_edit(
        self,
        image: ImageSource,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        mask: ImageSource | None = None,
        references: Sequence[ImageSource] = (),
    ) -> OperationResult:
        """Edit an image, waiting for the result (see ``start_generate_image_edit``)."""
        handle = await self.start_generate_image_edit(
            image,
            prompt,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            mask=mask,
            references=references,
        )
        return await handle.result()

    # ------------------------------------------------------------------ upscale

    async def start_generate_image_upscale(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        target_resolution: str | None = None,
        mode: str | None = None,
        target_width: int | None = None,
        target_height: int | None = None,
        prompt: str | None = None,
    ) -> OperationHandle:
        """Start an upscale of ``image``.

        Args:
            target_resolution: ``2k``/``4k``/``8k``, for upscalers that take it (WaveSpeed's).
            mode: Stability's upscaler: ``fast`` (4x), ``conservative`` (about 4 MP, faithful),
                ``creative`` (reimagines detail), or ``auto`` as the seed does: conservative
                when the target is 3000 px or more on its long side, else fast. An explicit
                ``options.model`` wins. Unknown modes are refused naming ``mode``.
            target_width: The wanted width; with ``target_height`` it decides ``auto``.
            target_height: The wanted height.
            prompt: What the image shows, for upscalers that take a prompt (conservative,
                creative); with ``mode`` a default is used when it is omitted.
        """
        opts = parse_options(OperationOptions, options)
        params: dict[str, Any] = {"target_resolution": target_resolution}
        if mode is not None:
            long_side = target_long_side(target_resolution, target_width, target_height)
            chosen = upscale_model(mode, long_side)
            if opts.model is None:
                opts = opts.model_copy(update={"model": chosen})
            spec = self.catalogue.resolve(Operation.UPSCALE, opts.model)
            if spec.field("target_resolution") is None:
                params = {}  # only used to choose the model
            takes_prompt = spec.field("prompt") is not None
            prompt = (prompt or DEFAULT_UPSCALE_PROMPT) if takes_prompt else None
        return await self.start_request(
            Operation.UPSCALE,
            user_id=user_id,
            options=opts,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images={ImageRole.BASE: image},
            params=params,
            label=f"upscale {mode or target_resolution or ''}".strip(),
        )

    async def generate_image_upscale(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        target_resolution: str | None = None,
        mode: str | None = None,
        target_width: int | None = None,
        target_height: int | None = None,
        prompt: str | None = None,
    ) -> OperationResult:
        """Upscale an image, waiting for the result (see ``start_generate_image_upscale``)."""
        handle = await self.start_generate_image_upscale(
            image,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            target_resolution=target_resolution,
            mode=mode,
            target_width=target_width,
            target_height=target_height,
            prompt=prompt,
        )
        return await handle.result()

    # ------------------------------------------------------------------ face swap

    async def start_generate_face_swap(
        self,
        base_image: ImageSource,
        face_image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        target_faces: Sequence[ImageSource] = (),
    ) -> OperationHandle:
        """Start putting the face from ``face_image`` onto ``base_image``.

        Args:
            target_faces: Which faces in ``base_image`` to replace, where the model supports it.
        """
        images: dict[ImageRole, Any] = {ImageRole.BASE: base_image, ImageRole.FACE: face_image}
        if target_faces:
            images[ImageRole.TARGET_FACE] = list(target_faces)
        return await self.start_request(
            Operation.FACE_SWAP,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            images=images,
            label="face swap",
        )

    async def generate_face_swap(
        self,
        base_image: ImageSource,
        face_image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        target_faces: Sequence[ImageSource] = (),
    ) -> OperationResult:
        """Swap a face, waiting for the result (see ``start_generate_face_swap``)."""
        handle = await self.start_generate_face_swap(
            base_image,
            face_image,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            target_faces=target_faces,
        )
        return await handle.result()

    # ------------------------------------------------------------------ translate

    async def start_generate_image_translate(
        self,
        image: ImageSource,
        target_language: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start translating the text in ``image`` into ``target_language`` (``en`` or a name)."""
        spec = self.catalogue.resolve(
            Operation.TRANSLATE, parse_options(OperationOptions, options).model
        )
        field = next((f for f in spec.inputs if f.name in ("target_language", "target_lang")), None)
        params = {field.name: language_value(target_language, field.values or ())} if field else {}
        return await self.start_request(
            Operation.TRANSLATE,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            images={ImageRole.BASE: image},
            params=params,
            label=f"translate to {target_language}"[:60],
        )

    async def generate_image_translate(
        self,
        image: ImageSource,
        target_language: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Translate an image's text, waiting for the result (see the ``start_`` twin)."""
        handle = await self.start_generate_image_translate(
            image,
            target_language,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
        )
        return await handle.result()

    # ------------------------------------------------------------------ erase

    async def start_erase_image(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        mask: ImageSource | None = None,
        prompt: str | None = None,
    ) -> OperationHandle:
        """Start removing objects: the white area of ``mask``, or what ``prompt`` names."""
        return await self.start_request(
            Operation.ERASE,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images={ImageRole.BASE: image, ImageRole.MASK: mask},
            label="erase",
        )

    async def erase_image(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        mask: ImageSource | None = None,
        prompt: str | None = None,
    ) -> OperationResult:
        """Remove objects, waiting for the result (see ``start_erase_image``)."""
        handle = await self.start_erase_image(
            image,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            mask=mask,
            prompt=prompt,
        )
        return await handle.result()

    # ------------------------------------------------------------------ expand

    async def start_expand_image(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        aspect_ratio: str | None = None,
        prompt: str | None = None,
        margins: Mapping[str, int] | None = None,
    ) -> OperationHandle:
        """Start outpainting ``image`` to a wider canvas.

        Args:
            aspect_ratio: The new canvas's ratio, for models that take one (WaveSpeed's).
            prompt: What to fill the new area with, where the model takes a prompt.
            margins: Pixels to add per side (``left``, ``right``, ``up``, ``down``; 0-2000), for
                models that take them (Stability outpaint, at least one non-zero).
        """
        return await self.start_request(
            Operation.EXPAND,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images={ImageRole.BASE: image},
            params={"aspect_ratio": aspect_ratio, **(margins or {})},
            label="expand",
        )

    async def expand_image(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
        aspect_ratio: str | None = None,
        prompt: str | None = None,
        margins: Mapping[str, int] | None = None,
    ) -> OperationResult:
        """Outpaint an image, waiting for the result (see ``start_expand_image``)."""
        handle = await self.start_expand_image(
            image,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            aspect_ratio=aspect_ratio,
            prompt=prompt,
            margins=margins,
        )
        return await handle.result()

    # ------------------------------------------------------------------ background

    async def start_replace_background(
        self,
        image: ImageSource,
        *,
        user_id: str,
        prompt: str | None = None,
        reference: ImageSource | None = None,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start keeping the subject and generating a new background from ``prompt`` or a
        ``reference`` image."""
        return await self.start_request(
            Operation.BACKGROUND,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images={ImageRole.BASE: image, ImageRole.REFERENCE: reference},
            label="background",
        )

    async def replace_background(
        self,
        image: ImageSource,
        *,
        user_id: str,
        prompt: str | None = None,
        reference: ImageSource | None = None,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Replace the background, waiting for the result (see ``start_replace_background``)."""
        handle = await self.start_replace_background(
            image,
            user_id=user_id,
            prompt=prompt,
            reference=reference,
            options=options,
            idempotency_key=idempotency_key,
        )
        return await handle.result()

    # ------------------------------------------------------------------ remove text

    async def start_remove_image_text(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start removing overlaid text from ``image``."""
        return await self.start_request(
            Operation.REMOVE_TEXT,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            images={ImageRole.BASE: image},
            label="remove text",
        )

    async def remove_image_text(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Remove overlaid text, waiting for the result (see ``start_remove_image_text``)."""
        handle = await self.start_remove_image_text(
            image, user_id=user_id, options=options, idempotency_key=idempotency_key
        )
        return await handle.result()
