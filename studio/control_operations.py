"""Control Studio, each operation written out with its ``start_`` twin: an image from a
sketch, from another image's structure, in another image's style, and style transfer.

Stability serves them today (``stable-image/control/*``); images go by role and the catalogue
names the field (``ImageRole.SKETCH``/``BASE`` is ``image``, ``STYLE`` is ``image`` or
``style_image``, ``BASE`` of style transfer is ``init_image``).
"""

from __future__ import annotations

from typing import Any

from blobs.ingest import ImageSource
from contracts.operation import OperationResult
from providers.catalogue import ImageRole, Operation
from studio.handles import OperationHandle
from studio.operations import OperationStarter, Options


class ControlOperations(OperationStarter):
    """Mixed into ``Studio``: each operation written out, with its ``start_`` twin."""

    # ------------------------------------------------------------------ sketch

    async def start_sketch_to_image(
        self,
        sketch: ImageSource,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start turning ``sketch`` into a finished image as ``prompt`` says.

        Args:
            sketch: A drawing or outline (same size out as in).
            prompt: What the finished image shows.
            user_id: The end user the run belongs to (quota, budget, ownership).
            options: ``model``, ``seed``, ``output_format``, ``extra`` (e.g. ``control_strength``
                0-1, how closely the sketch is followed; ``style_preset``).
            idempotency_key: Same key and request: the same run.
        """
        images: dict[ImageRole, Any] = {ImageRole.SKETCH: sketch}
        return await self.start_request(
            Operation.SKETCH,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images=images,
            label="sketch",
        )

    async def sketch_to_image(
        self,
        sketch: ImageSource,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Sketch to image, waiting for the result (see ``start_sketch_to_image``)."""
        handle = await self.start_sketch_to_image(
            sketch,
            prompt,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
        )
        return await handle.result()

    # ------------------------------------------------------------------ structure

    async def start_structure_to_image(
        self,
        image: ImageSource,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start drawing what ``prompt`` says while keeping the structure of ``image``.

        Args:
            image: The image whose layout and shapes are kept.
            prompt: What the new image shows.
            user_id: The end user the run belongs to (quota, budget, ownership).
            options: ``model``, ``seed``, ``output_format``, ``extra`` (``control_strength`` 0-1).
            idempotency_key: Same key and request: the same run.
        """
        images: dict[ImageRole, Any] = {ImageRole.BASE: image}
        return await self.start_request(
            Operation.STRUCTURE,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images=images,
            label="structure",
        )

    async def structure_to_image(
        self,
        image: ImageSource,
        prompt: str,
        *,
        user_id: str,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Structure to image, waiting for the result (see ``start_structure_to_image``)."""
        handle = await self.start_structure_to_image(
            image,
            prompt,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
        )
        return await handle.result()

    # ------------------------------------------------------------------ style

    async def start_generate_image_in_style(
        self,
        style_image: ImageSource,
        prompt: str,
        *,
        user_id: str,
        aspect_ratio: str | None = None,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start a new image as ``prompt`` says, in the style of ``style_image``.

        Args:
            style_image: The image whose style is taken.
            prompt: What the new image shows.
            user_id: The end user the run belongs to (quota, budget, ownership).
            aspect_ratio: The output's ratio, e.g. ``16:9`` (default 1:1).
            options: ``model``, ``seed``, ``output_format``, ``extra`` (``fidelity`` 0-1).
            idempotency_key: Same key and request: the same run.
        """
        images: dict[ImageRole, Any] = {ImageRole.STYLE: style_image}
        return await self.start_request(
            Operation.STYLE,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images=images,
            params={"aspect_ratio": aspect_ratio},
            label="style",
        )

    async def generate_image_in_style(
        self,
        style_image: ImageSource,
        prompt: str,
        *,
        user_id: str,
        aspect_ratio: str | None = None,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Generate in a style, waiting for the result (see ``start_generate_image_in_style``)."""
        handle = await self.start_generate_image_in_style(
            style_image,
            prompt,
            user_id=user_id,
            aspect_ratio=aspect_ratio,
            options=options,
            idempotency_key=idempotency_key,
        )
        return await handle.result()

    # ------------------------------------------------------------------ style transfer

    async def start_transfer_image_style(
        self,
        image: ImageSource,
        style_image: ImageSource,
        *,
        user_id: str,
        prompt: str | None = None,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationHandle:
        """Start redrawing ``image`` in the style of ``style_image``.

        Args:
            image: The image to redraw (its composition is kept).
            style_image: The image whose style is applied.
            user_id: The end user the run belongs to (quota, budget, ownership).
            prompt: Optional guidance for the result.
            options: ``model``, ``seed``, ``output_format``, ``extra`` (``style_strength``,
                ``composition_fidelity``, ``change_strength``).
            idempotency_key: Same key and request: the same run.
        """
        images: dict[ImageRole, Any] = {ImageRole.BASE: image, ImageRole.STYLE: style_image}
        return await self.start_request(
            Operation.STYLE_TRANSFER,
            user_id=user_id,
            options=options,
            idempotency_key=idempotency_key,
            prompt=prompt,
            images=images,
            label="style transfer",
        )

    async def transfer_image_style(
        self,
        image: ImageSource,
        style_image: ImageSource,
        *,
        user_id: str,
        prompt: str | None = None,
        options: Options = None,
        idempotency_key: str | None = None,
    ) -> OperationResult:
        """Transfer a style, waiting for the result (see ``start_transfer_image_style``)."""
        handle = await self.start_transfer_image_style(
            image,
            style_image,
            user_id=user_id,
            prompt=prompt,
            options=options,
            idempotency_key=idempotency_key,
        )
        return await handle.result()
