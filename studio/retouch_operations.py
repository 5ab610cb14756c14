"""Stability's edit operations, each written out with its ``start_`` twin: inpaint,
search-and-replace, search-and-recolor, remove background, replace background and relight.

Nothing here names a model: the catalogue's default for each operation is Stability's (the only
provider serving them today), images go by role and the catalogue names the field
(``ImageRole.BASE`` is ``image`` or ``subject_image``, ``BACKGROUND`` is
``background_reference``, ``LIGHT`` is ``light_reference``, ``MASK`` is ``mask``).
"""

from __future__ import annotations

from typing import Any

from blobs.ingest import ImageSource
from contracts.operation import OperationResult
from providers.catalogue import ImageRole, Operation
from studio.handles import OperationHandle
from studio.operations import OperationStarter, Options


class RetouchOperations(OperationStarter):
    """Mixed into ``Studio``: each operation written out, with its ``start_`` twin."""

    # ------------------------------------------------------------------ inpaint

    async def start_inpaint_image(
        self,
        image: ImageSource,
        prompt: str,
        *,
        user_id: str,
        mask: ImageSource | None = None,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start repainting part of ``image`` as ``prompt`` says.

        Args:
            image: The image to change.
            prompt: What the masked area should show.
            user_id: The end user the run belongs to (quota, budget, ownership).
            mask: White marks the area to repaint, black what to keep; without it the
                transparent pixels of ``image`` are repainted.
            options: ``model``, ``seed``, ``output_format``, ``extra`` (e.g. ``grow_mask``,
                ``negative_prompt``, ``style_preset``).
            idempotency_key: Same key and request: the same run.
        """
        images: dict[ImageRole, Any] = {ImageRole.BASE: image, ImageRole.MASK: mask}
        return await self.start_request(
            Operation.INPAINT,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images=images,
            label="inpaint",
        )

    async def inpaint_image(
        self,
        image: ImageSource,
        prompt: str,
        *,
        user_id: str,
        mask: ImageSource | None = None,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Inpaint, waiting for the result (see ``start_inpaint_image``)."""
        handle = await self.start_inpaint_image(
            image,
            prompt,
            user_id=user_id,
            mask=mask,
            options=options,
            idempotency_key=idempotency_key,
        )
        return await handle.result()

    # ------------------------------------------------------------------ search and replace

    async def start_search_and_replace_image(
        self,
        image: ImageSource,
        search_prompt: str,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start replacing what ``search_prompt`` names in ``image`` with what ``prompt`` describes.

        Args:
            image: The image to change.
            search_prompt: What to find, e.g. ``the dog`` (no mask needed).
            prompt: What to put in its place.
            user_id: The end user the run belongs to (quota, budget, ownership).
            options: ``model``, ``seed``, ``output_format``, ``extra`` (e.g. ``grow_mask``).
            idempotency_key: Same key and request: the same run.
        """
        images: dict[ImageRole, Any] = {ImageRole.BASE: image}
        return await self.start_request(
            Operation.SEARCH_REPLACE,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images=images,
            params={"search_prompt": search_prompt},
            label="search and replace",
        )

    async def search_and_replace_image(
        self,
        image: ImageSource,
        search_prompt: str,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Search and replace, waiting for the result (see ``start_search_and_replace_image``)."""
        handle = await self.start_search_and_replace_image(
            image,
            search_prompt,
            prompt,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
        )
        return await handle.result()

    # ------------------------------------------------------------------ search and recolor

    async def start_search_and_recolor_image(
        self,
        image: ImageSource,
        select_prompt: str,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start recolouring what ``select_prompt`` names in ``image`` as ``prompt`` says.

        Args:
            image: The image to change.
            select_prompt: What to recolour, e.g. ``the jacket``.
            prompt: The new colours, e.g. ``a bright red jacket``.
            user_id: The end user the run belongs to (quota, budget, ownership).
            options: ``model``, ``seed``, ``output_format``, ``extra`` (e.g. ``grow_mask``).
            idempotency_key: Same key and request: the same run.
        """
        images: dict[ImageRole, Any] = {ImageRole.BASE: image}
        return await self.start_request(
            Operation.SEARCH_RECOLOR,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images=images,
            params={"select_prompt": select_prompt},
            label="search and recolor",
        )

    async def search_and_recolor_image(
        self,
        image: ImageSource,
        select_prompt: str,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Search and recolor, waiting for the result (see ``start_search_and_recolor_image``)."""
        handle = await self.start_search_and_recolor_image(
            image,
            select_prompt,
            prompt,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
        )
        return await handle.result()

    # ------------------------------------------------------------------ remove background

    async def start_remove_image_background(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start cutting the subject of ``image`` out onto a transparent background.

        Args:
            image: The image whose background goes.
            user_id: The end user the run belongs to (quota, budget, ownership).
            options: ``model``, ``output_format`` (``png`` or ``webp`` only: they keep transparency).
            idempotency_key: Same key and request: the same run.
        """
        images: dict[ImageRole, Any] = {ImageRole.BASE: image}
        return await self.start_request(
            Operation.REMOVE_BACKGROUND,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            images=images,
            label="remove background",
        )

    async def remove_image_background(
        self,
        image: ImageSource,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Remove the background, waiting for the result (see ``start_remove_image_background``)."""
        handle = await self.start_remove_image_background(
            image,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
        )
        return await handle.result()

    # ------------------------------------------------------------------ relight

    async def start_relight_image(
        self,
        image: ImageSource,
        *,
        user_id: str,
        background_prompt: str | None = None,
        background_reference: ImageSource | None = None,
        light_reference: ImageSource | None = None,
        light_source_direction: str | None = None,
        foreground_prompt: str | None = None,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start replacing the background of ``image`` and relighting its subject to match.

        Args:
            image: The subject's image.
            user_id: The end user the run belongs to (quota, budget, ownership).
            background_prompt: The new background, described; this or ``background_reference``
                is required.
            background_reference: An image of the new background.
            light_reference: An image whose lighting the subject takes.
            light_source_direction: ``left``, ``right``, ``above`` or ``below``.
            foreground_prompt: The subject, described (helps keep it as it is).
            options: ``model``, ``seed``, ``output_format``, ``extra`` (e.g.
                ``preserve_original_subject``, ``keep_original_background``).
            idempotency_key: Same key and request: the same run.
        """
        images: dict[ImageRole, Any] = {
            ImageRole.BASE: image,
            ImageRole.BACKGROUND: background_reference,
            ImageRole.LIGHT: light_reference,
        }
        return await self.start_request(
            Operation.RELIGHT,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            images=images,
            params={
                "background_prompt": background_prompt,
                "light_source_direction": light_source_direction,
                "foreground_prompt": foreground_prompt,
            },
            label="relight",
        )

    async def relight_image(
        self,
        image: ImageSource,
        *,
        user_id: str,
        background_prompt: str | None = None,
        background_reference: ImageSource | None = None,
        light_reference: ImageSource | None = None,
        light_source_direction: str | None = None,
        foreground_prompt: str | None = None,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Replace the background and relight, waiting for the result (see ``start_relight_image``)."""
        handle = await self.start_relight_image(
            image,
            user_id=user_id,
            background_prompt=background_prompt,
            background_reference=background_reference,
            light_reference=light_reference,
            light_source_direction=light_source_direction,
            foreground_prompt=foreground_prompt,
            options=options,
            idempotency_key=idempotency_key,
        )
        return await handle.result()
