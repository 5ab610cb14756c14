"""The model catalogue: the single source of truth for validation, routing, prices and the model list.

Adding a model is adding an entry to ``catalogue.yaml``; nothing in the engine branches on a model id.
The file is validated when it is loaded, so a bad entry fails at start-up, not in front of a user.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from contracts.errors import FieldError, InvalidRequestError
from contracts.operation import BlobRef, OutputKind

CATALOGUE_FILE = Path(__file__).with_name("catalogue.yaml")

SIZE_PATTERN = re.compile(r"^(\d{2,5})\*(\d{2,5})$")


class Operation(StrEnum):
    """What a user asks for; one model may serve several operations."""

    TEXT_TO_IMAGE = "text_to_image"
    CHARACTER = "character"
    EDIT = "edit"
    UPSCALE = "upscale"
    IMAGE_TO_3D = "image_to_3d"
    TEXT_TO_3D = "text_to_3d"
    FACE_SWAP = "face_swap"
    TRANSLATE = "translate"
    ERASE = "erase"
    EXPAND = "expand"
    BACKGROUND = "background"
    REMOVE_TEXT = "remove_text"
    CAPTION = "caption"
    OPTIMIZE_PROMPT = "optimize_prompt"
    INPAINT = "inpaint"
    SEARCH_REPLACE = "search_replace"
    SEARCH_RECOLOR = "search_recolor"
    REMOVE_BACKGROUND = "remove_background"
    RELIGHT = "relight"
    SKETCH = "sketch"
    STRUCTURE = "structure"
    STYLE = "style"
    STYLE_TRANSFER = "style_transfer"


class Tier(StrEnum):
    """A model's price/quality band (the seed's budget/mid/premium); see ``domain.recommend``."""

    BUDGET = "budget"
    MID = "mid"
    PREMIUM = "premium"


class ImageRole(StrEnum):
    """What an image input means to the model, so public functions can fill the right field."""

    BASE = "base"  # the image being edited/upscaled/translated/turned into 3D
    REFERENCE = "reference"  # style/character/multi-image references
    FACE = "face"  # the face to put onto the base image
    TARGET_FACE = "target_face"  # which face in the base image to replace
    MASK = "mask"  # white = area to change
    FRONT = "front"
    BACK = "back"
    LEFT = "left"
    RIGHT = "right"
    SKETCH = "sketch"
    STYLE = "style"  # the image whose style is taken (Stability control style, style transfer)
    BACKGROUND = "background"  # a new background to put behind the subject (relight)
    LIGHT = "light"  # an image whose lighting is copied onto the subject (relight)


FieldType = Literal["string", "integer", "number", "boolean", "enum", "size", "image", "images"]


class InputField(BaseModel):
    """One request field of a model, exactly as WaveSpeed takes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    """Wire name, e.g. ``size``, ``images``, ``target_resolution``."""
    type: FieldType
    required: bool = False
    default: Any = None
    """What the provider uses when the field is absent; also used by cost and size estimates."""
    description: str = ""
    min: float | None = None
    """Lower bound: the value for numbers, each side for ``size``."""
    max: float | None = None
    """Upper bound: the value for numbers, each side for ``size``."""
    max_length: int | None = None
    """Longest accepted string."""
    values: tuple[str | int, ...] | None = None
    """Allowed values of an ``enum`` field."""
    min_items: int | None = None
    max_items: int | None = None
    role: ImageRole | None = None
    """For ``image``/``images`` fields: what the image means to the model."""

    @model_validator(mode="after")
    def _check_consistency(self) -> InputField:
        if self.type == "enum" and not self.values:
            raise ValueError(f"enum field {self.name!r} needs values")
        if self.type in ("image", "images") and self.role is None:
            raise ValueError(f"image field {self.name!r} needs a role")
        if self.type not in ("image", "images") and self.role is not None:
            raise ValueError(f"only image fields take a role ({self.name!r})")
        return self

    def describe_allowed(self) -> str:
        """A short human description of what the field accepts (used in error messages)."""
        if self.type == "enum":
            return "one of " + ", ".join(str(v) for v in self.values or ())
        if self.type == "size":
            return f'"W*H" with each side in [{_num(self.min)}, {_num(self.max)}]'
        if self.type in ("integer", "number"):
            article = "an" if self.type == "integer" else "a"
            return f"{article} {self.type} in [{_num(self.min)}, {_num(self.max)}]"
        if self.type == "images":
            return f"a list of {self.min_items or 1} to {self.max_items or 'any number of'} images"
        if self.type == "image":
            return "an image"
        if self.type == "string" and self.max_length:
            return f"text of at most {self.max_length} characters"
        return f"a {self.type}"


class OutputSpec(BaseModel):
    """What a model returns: the kind of output and the file formats it can produce."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: OutputKind
    formats: tuple[str, ...] = ("png",)
    """File formats the model can return; the first is the usual one."""


ProviderName = Literal["wavespeed", "stability", "huggingface", "gemini"]


class ModelSpec(BaseModel):
    """One hosted model and everything the engine needs to know about it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    """Short id used by our API, e.g. ``qwen-image``."""
    name: str
    provider: ProviderName = "wavespeed"
    """Who runs it; the worker needs that provider's key (docs/providers.md)."""
    synchronous: bool = False
    """The image comes in the POST response: no job id, nothing to reconcile; an unanswered
    POST is possible provider cost and is never repeated on the same provider."""
    path: str
    """The provider's model path: WaveSpeed ``POST /api/v3/{path}``, Stability
    ``POST /v2beta/{path}``, Hugging Face the Hub model id, Gemini ``models/{model}``."""
    operations: tuple[Operation, ...]
    price_usd: Decimal
    """One price per run: validation, estimates and settlement all use it."""
    output: OutputSpec
    max_resolution: str | None = None
    """Largest output as ``"W*H"``, where the model states one."""
    tier: Tier = Tier.MID
    deterministic: bool = False
    """Same inputs give the same output (upscalers); such results may be reused across runs."""
    typical_seconds: int = 10
    """How long a prediction usually takes; shapes the polling schedule."""
    source: Literal["code", "docs", "docs-unverified"] = "docs"
    """Where the entry comes from in the seed system (see docs/catalogue.md)."""
    notes: str = ""
    inputs: tuple[InputField, ...]
    requires_one_of: tuple[tuple[str, ...], ...] = ()
    """Groups of inputs of which at least one must be given (numbers non-zero): the provider
    refuses the request otherwise (Stability outpaint's directions, relight's background)."""

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str, info: ValidationInfo) -> str:
        # Hugging Face model ids are case-sensitive (``black-forest-labs/FLUX.1-schnell``).
        segment = (
            "[A-Za-z0-9][A-Za-z0-9._-]*"
            if info.data.get("provider") == "huggingface"
            else "[a-z0-9][a-z0-9._-]*"
        )
        if not re.fullmatch(rf"{segment}(/{segment})+", value):
            raise ValueError(f"model path {value!r} must look like 'owner/model[/variant]'")
        return value

    @field_validator("price_usd")
    @classmethod
    def _price_positive(cls, value: Decimal) -> Decimal:
        if value < 0 or value > 10:
            raise ValueError("price_usd must be between 0 and 10")
        return value

    @model_validator(mode="after")
    def _unique_fields(self) -> ModelSpec:
        names = [f.name for f in self.inputs]
        if len(names) != len(set(names)):
            raise ValueError(f"model {self.id!r} declares a field twice")
        if not self.operations:
            raise ValueError(f"model {self.id!r} has no operation")
        for group in self.requires_one_of:
            if not group or any(name not in names for name in group):
                raise ValueError(f"model {self.id!r}: requires_one_of names unknown fields")
        return self

    def field(self, name: str) -> InputField | None:
        """The input field named ``name``, if the model has one."""
        return next((f for f in self.inputs if f.name == name), None)

    def image_fields(self) -> tuple[InputField, ...]:
        """The model's image inputs (single images and lists), in declaration order."""
        return tuple(f for f in self.inputs if f.type in ("image", "images"))

    def field_for_role(self, role: ImageRole) -> InputField | None:
        """The input field that takes images of ``role``, if the model has one."""
        return next((f for f in self.inputs if f.role == role), None)

    def validate_inputs(
        self, inputs: Mapping[str, Any], *, prefix: str = "inputs", wire: bool = False
    ) -> dict[str, Any]:
        """Check ``inputs`` against this model's schema; return them normalised.

        With ``wire=False`` image fields hold ``BlobRef``s (our side, before upload); with
        ``wire=True`` they hold URLs, as in the body WaveSpeed receives (the emulator's view).
        Raises ``InvalidRequestError`` listing every bad field with what it accepts.
        """
        try:
            validated = _input_model(self, wire).model_validate(dict(inputs))
        except ValidationError as exc:
            raise InvalidRequestError(
                f"invalid inputs for model {self.id}",
                [self._field_error(err, prefix) for err in exc.errors()],
            ) from None
        result = validated.model_dump(mode="json", exclude_unset=True)
        lacking = [group for group in self.requires_one_of if not any(result.get(n) for n in group)]
        if lacking:
            raise InvalidRequestError(
                f"invalid inputs for model {self.id}",
                [
                    FieldError(
                        f"{prefix}.{group[0]}",
                        "required: at least one of " + ", ".join(group),
                        "a non-empty value in one of " + ", ".join(group),
                    )
                    for group in lacking
                ],
            )
        return result

    def _field_error(self, err: Mapping[str, Any], prefix: str) -> FieldError:
        loc = [str(p) for p in err["loc"]]
        name = loc[0] if loc else ""
        spec = self.field(name)
        path = ".".join([prefix, *loc])
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(f.name for f in self.inputs)
            return FieldError(path, f"unknown field for model {self.id}; fields: {allowed}")
        if err["type"] == "missing":
            return FieldError(path, "required", spec.describe_allowed() if spec else None)
        message = err["msg"].removeprefix("Value error, ")
        return FieldError(path, message, spec.describe_allowed() if spec else None)


class Catalogue(BaseModel):
    """All models, with the queries the engine and the model list need."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    models: tuple[ModelSpec, ...]
    routes: dict[Operation, dict[str, tuple[str, ...]]] = Field(default_factory=dict)
    """Per operation, quality tier -> model ids tried in order when ``provider="auto"``."""

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalogue:
        seen: set[str] = set()
        for spec in self.models:
            if spec.id in seen:
                raise ValueError(f"model id {spec.id!r} appears twice")
            seen.add(spec.id)
        for operation, tiers in self.routes.items():
            for tier, ids in tiers.items():
                for model_id in ids:
                    if model_id not in seen or operation not in self.get(model_id).operations:
                        raise ValueError(
                            f"route {operation}/{tier}: {model_id!r} does not serve it"
                        )
        return self

    def route(self, operation: Operation, tier: str) -> tuple[ModelSpec, ...]:
        """The models a quality tier tries in order; unknown tiers name ``options.quality``."""
        tiers = self.routes.get(operation, {})
        if tier not in tiers:
            raise InvalidRequestError(
                f"no route for quality {tier!r} of {operation}",
                [
                    FieldError(
                        "options.quality", f"unknown tier {tier!r}", "one of " + ", ".join(tiers)
                    )
                ],
            )
        return tuple(self.get(model_id) for model_id in tiers[tier])

    def get(self, model_id: str) -> ModelSpec:
        """The model with this id, or an error naming the field and listing known ids."""
        for spec in self.models:
            if spec.id == model_id:
                return spec
        raise InvalidRequestError(
            f"unknown model {model_id!r}",
            [FieldError("model", f"unknown model {model_id!r}", "one of " + ", ".join(self.ids()))],
        )

    def by_path(self, path: str) -> ModelSpec | None:
        """The model with this provider path, if catalogued."""
        return next((m for m in self.models if m.path == path), None)

    def ids(self) -> list[str]:
        """Every model id, in catalogue order."""
        return [m.id for m in self.models]

    def for_operation(self, operation: Operation) -> list[ModelSpec]:
        """The models that serve ``operation``, in catalogue order (the first is the default)."""
        return [m for m in self.models if operation in m.operations]

    def price(self, model_id: str) -> Decimal:
        """The price per run of ``model_id`` in USD.

        Raises:
            InvalidRequestError: the model is unknown.
        """
        return self.get(model_id).price_usd

    def resolve(self, operation: Operation, model_id: str | None) -> ModelSpec:
        """The model to run ``operation`` with: the named one (checked) or the default for it."""
        if model_id is None:
            candidates = self.for_operation(operation)
            if not candidates:
                raise InvalidRequestError(
                    f"no model serves {operation}", [FieldError("operation", "no model serves it")]
                )
            return candidates[0]
        if model_id not in self.ids():
            allowed = ", ".join(m.id for m in self.for_operation(operation))
            raise InvalidRequestError(
                f"unknown model {model_id!r}",
                [FieldError("model", f"unknown model {model_id!r}", f"one of {allowed}")],
            )
        spec = self.get(model_id)
        if operation not in spec.operations:
            allowed = ", ".join(m.id for m in self.for_operation(operation))
            raise InvalidRequestError(
                f"model {model_id} does not do {operation}",
                [
                    FieldError(
                        "model", f"model {model_id} does not do {operation}", f"one of {allowed}"
                    )
                ],
            )
        return spec


def _num(value: float | None) -> str:
    if value is None:
        return "any"
    return str(int(value)) if float(value).is_integer() else str(value)


def _size_checker(spec: InputField):
    def check(value: str) -> str:
        match = SIZE_PATTERN.fullmatch(value)
        if not match:
            raise ValueError(f'must be written "W*H", e.g. "1024*1024"; got {value!r}')
        for side in (int(match[1]), int(match[2])):
            if (spec.min is not None and side < spec.min) or (
                spec.max is not None and side > spec.max
            ):
                raise ValueError(
                    f"{value} is out of range: each side must be in [{_num(spec.min)}, {_num(spec.max)}]"
                )
        return value

    return check


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _image_ref_checker(value: BlobRef) -> BlobRef:
    if not value.media_type.startswith("image/"):
        raise ValueError(f"must be an image, got {value.media_type}")
    return value


ImageInput = Annotated[BlobRef, AfterValidator(_image_ref_checker)]
ImageUrl = Annotated[str, Field(pattern=r"^(https?://|data:image/)\S+$", max_length=16_000_000)]


def _annotation(spec: InputField, wire: bool) -> Any:
    """The pydantic type for one catalogue field."""
    if spec.type == "string":
        text = Annotated[
            str, Field(min_length=1 if spec.required else 0, max_length=spec.max_length)
        ]
        return Annotated[text, AfterValidator(_not_blank)] if spec.required else text
    if spec.type == "integer":
        return Annotated[int, Field(ge=spec.min, le=spec.max, strict=True)]
    if spec.type == "number":
        return Annotated[float, Field(ge=spec.min, le=spec.max)]
    if spec.type == "boolean":
        return Annotated[bool, Field(strict=True)]
    if spec.type == "enum":
        return Literal[tuple(spec.values or ())]
    if spec.type == "size":
        return Annotated[str, AfterValidator(_size_checker(spec))]
    if spec.type == "image":
        return ImageUrl if wire else ImageInput
    if spec.type == "images":
        count = Field(min_length=spec.min_items or 1, max_length=spec.max_items)
        return Annotated[list[ImageUrl], count] if wire else Annotated[list[ImageInput], count]
    raise AssertionError(spec.type)


@functools.cache
def _input_model(spec: ModelSpec, wire: bool) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for f in spec.inputs:
        annotation = _annotation(f, wire)
        fields[f.name] = (annotation, ...) if f.required else (annotation | None, None)
    return create_model(
        ("Wire_" if wire else "Inputs_") + re.sub(r"\W", "_", spec.id),
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )


def parse_catalogue(data: Mapping[str, Any]) -> Catalogue:
    """A catalogue from already-parsed YAML/JSON data.

    Raises:
        pydantic.ValidationError: an entry is malformed (at start-up, not in front of a user).
    """
    return Catalogue.model_validate(data)


@functools.cache
def load_catalogue(path: Path = CATALOGUE_FILE) -> Catalogue:
    """Load and validate the shipped catalogue (cached: it is immutable data)."""
    with path.open(encoding="utf-8") as fh:
        return parse_catalogue(yaml.safe_load(fh))


def export_model_list(
    catalogue: Catalogue, operation: Operation | None = None
) -> list[dict[str, Any]]:
    """The model list a frontend needs: operation, price, limits and input fields of every model."""
    models: Iterable[ModelSpec] = (
        catalogue.for_operation(operation) if operation else catalogue.models
    )
    return [m.model_dump(mode="json") for m in models]
