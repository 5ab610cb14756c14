"""Options the public functions take; anything model-specific goes in ``extra``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.errors import FieldError, InvalidRequestError


def parse_size(value: str, field: str = "size") -> tuple[int, int]:
    """``(width, height)`` from ``"W*H"`` (also ``x`` or ``×``).

    Raises:
        InvalidRequestError: naming ``field`` when the text is not a size.
    """
    match = re.fullmatch(r"\s*(\d{1,5})\s*[*xX×]\s*(\d{1,5})\s*", value)
    if not match:
        raise InvalidRequestError(
            "invalid size", [FieldError(field, f"cannot read {value!r}", '"W*H", e.g. "1024*1024"')]
        )
    return int(match[1]), int(match[2])


T = TypeVar("T", bound="OperationOptions")


class OperationOptions(BaseModel):
    """Options every operation takes."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    """Catalogue model id; default: the catalogue's first model for the operation."""
    num_variations: int = Field(default=1, ge=1, le=10)
    seed: int | None = None
    output_format: str | None = None
    width: int | None = Field(default=None, ge=1, le=16384)
    height: int | None = Field(default=None, ge=1, le=16384)
    size: str | None = None
    """``"W*H"``; alternative to width/height, for models that take an output size."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Any other model-native field (e.g. ``target_resolution``), checked against the model's schema."""

    def output_size(self) -> tuple[int, int] | None:
        """The requested output size, from ``size`` or from ``width`` and ``height``; None if unset.

        Raises:
            InvalidRequestError: ``size`` is unreadable, or only one of width and height is given.
        """
        if self.size:
            return parse_size(self.size, "options.size")
        if self.width or self.height:
            if not (self.width and self.height):
                missing = "height" if self.width else "width"
                raise InvalidRequestError(
                    "size needs both sides",
                    [FieldError(f"options.{missing}", "required with the other side")],
                )
            return self.width, self.height
        return None

    def model_params(self) -> dict[str, Any]:
        """The model-native fields these options set (None values are dropped later)."""
        return {"seed": self.seed, "output_format": self.output_format, **self.extra}


class GenerateOptions(OperationOptions):
    """Text-to-image options, including the Create Studio presets."""

    negative_prompt: str | None = None
    template_id: str | None = None
    """One of the 26 platform templates (``domain.create_studio``): size, style and quality."""
    aspect_ratio: str | None = None
    """One of the 14 aspect-ratio presets, e.g. ``16:9`` or ``2:3``."""
    style_preset: str | None = None
    """photographic, digital-art, cinematic, 3d-model, anime or line-art."""
    quality: str | None = None
    """draft, standard or premium: picks the model when none is named."""
    provider: str | None = None
    """``auto``: the quality tier's route of (provider, model) entries with fallback (default
    tier ``standard``); a provider name (``wavespeed``, ``stability``): that provider's entries
    of the route only. Unset: the tier's single model, no fallback."""

    def model_params(self) -> dict[str, Any]:
        """The model-native fields these options set, with the negative prompt."""
        return {"negative_prompt": self.negative_prompt, **super().model_params()}


def parse_options(model: type[T], value: OperationOptions | Mapping[str, Any] | None) -> T:
    """Options from a typed value or a dict; errors name ``options.<field>``."""
    if isinstance(value, model):
        return value
    if isinstance(value, OperationOptions):
        value = value.model_dump(exclude_unset=True)
    if value is not None and not isinstance(value, dict):
        value = dict(value)
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
