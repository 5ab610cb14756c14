"""The image operations, each as a ``start_`` method (returns a handle) and a waiting one, written
out in ``studio.create_operations``, ``studio.edit_operations``, ``studio.retouch_operations``
(Stability's edits) and ``studio.control_operations`` (Control Studio).

They mirror the seed system's entry points (``generate_image``, ``generate_character_image``,
``generate_image_edit``, ``generate_image_upscale``, ``generate_image_to_3d``,
``generate_face_swap``, ``generate_image_translate``) plus the utility edits. Every method takes
its inputs positionally and the rest by keyword: ``user_id`` (required), ``options`` (typed, or a
dict), ``idempotency_key`` (the same key and request give the same run, never a second one).
None has model-specific code: images go by role and the catalogue names the model's field.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from blobs.ingest import ImageSource
from domain.options import OperationOptions
from providers.catalogue import Catalogue, ImageRole, Operation
from studio.handles import OperationHandle

Options = OperationOptions | Mapping[str, Any] | None
"""Typed options, or the same fields as a dict (validated, errors name ``options.<field>``)."""


class OperationStarter(ABC):
    """What the operation mixins need from ``Studio``: the catalogue and ``start_request``
    (validate, store the images, then start the workflow)."""

    catalogue: Catalogue

    @abstractmethod
    async def start_request(
        self,
        operation: Operation,
        *,
        user_id: str,
        options: Options,
        idempotency_key: str | None,
        label: str,
        prompt: str | None = None,
        images: Mapping[ImageRole, ImageSource | Sequence[ImageSource] | None] | None = None,
        params: Mapping[str, Any] | None = None,
        options_type: type[OperationOptions] = OperationOptions,
    ) -> OperationHandle:
        """Validate a request for ``operation``, store its images and start its run."""


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


def language_value(language: str, allowed: Sequence[str | int]) -> str:
    """``en`` or ``english``, whichever spelling the model's field takes."""
    wanted = language.strip().lower()
    if wanted in allowed:
        return wanted
    by_name = {v: k for k, v in LANGUAGE_NAMES.items()}
    for candidate in (LANGUAGE_NAMES.get(wanted), by_name.get(wanted)):
        if candidate is not None and candidate in allowed:
            return candidate
    return wanted
