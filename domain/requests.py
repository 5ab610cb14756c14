"""Build a model-native request from friendly arguments, using only the catalogue.

Public functions speak in prompts, sizes and images-by-role; models speak in their own field names
(``size`` vs ``width``/``height``, ``image`` vs ``images[]`` vs ``target_image``). This module is
the only translation between the two, so no function needs per-model code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from contracts.errors import FieldError, InvalidRequestError
from contracts.operation import BlobRef, OperationRequest, RouteEntry
from domain.create_studio import load_create_studio, plan_create
from domain.options import GenerateOptions, OperationOptions
from domain.routes import resolve_route
from domain.run_ids import new_operation_id
from providers.catalogue import Catalogue, ImageRole, ModelSpec, Operation

PROMPT_FIELDS = ("prompt", "text")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")


def id_part(text: str, limit: int) -> str:
    """``text`` made safe inside a workflow id: other characters become ``-``, cut to ``limit``."""
    return _ID_UNSAFE.sub("-", text)[:limit]


def build_inputs(
    spec: ModelSpec,
    *,
    prompt: str | None = None,
    images: Mapping[ImageRole, BlobRef | Sequence[BlobRef]] | None = None,
    size: tuple[int, int] | None = None,
    fit_size: bool = False,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Model inputs for ``spec``; every argument lands in the field the catalogue names for it."""
    inputs: dict[str, Any] = {}
    errors: list[FieldError] = []
    if prompt is not None:
        field = next((spec.field(n) for n in PROMPT_FIELDS if spec.field(n)), None)
        if field is None:
            errors.append(FieldError("prompt", f"model {spec.id} takes no prompt"))
        elif not prompt.strip():
            errors.append(FieldError("prompt", "must not be empty", field.describe_allowed()))
        else:
            inputs[field.name] = prompt
    if size is not None:
        inputs.update(_size_fields(spec, size, errors, fit_size))
    for role, value in (images or {}).items():
        field = spec.field_for_role(role)
        refs = (
            list(value)
            if isinstance(value, Sequence) and not isinstance(value, BlobRef)
            else [value]
        )
        if field is None:
            roles = ", ".join(sorted({f.role.value for f in spec.image_fields() if f.role}))
            errors.append(
                FieldError(
                    f"images.{role.value}",
                    f"model {spec.id} takes no {role.value} image",
                    roles or "none",
                )
            )
        elif field.type == "image":
            if len(refs) != 1:
                errors.append(
                    FieldError(
                        f"images.{role.value}", "exactly one image", field.describe_allowed()
                    )
                )
            else:
                inputs[field.name] = refs[0].model_dump(mode="json")
        else:
            inputs[field.name] = [r.model_dump(mode="json") for r in refs]
    for name, value in (params or {}).items():
        if value is None:
            continue
        if name == "output_format" and spec.field(name) is None:
            # A model with one fixed output format honours a request for exactly that format.
            if value not in spec.output.formats:
                allowed = ", ".join(spec.output.formats)
                errors.append(FieldError("options.output_format", f"{spec.id} answers {allowed}"))
            continue
        inputs[name] = value
    if errors:
        raise InvalidRequestError(f"invalid request for model {spec.id}", errors)
    return inputs


def _size_fields(
    spec: ModelSpec, size: tuple[int, int], errors: list[FieldError], fit: bool
) -> dict[str, Any]:
    """Put an output size into the model's own terms.

    An explicit size must be one the model takes (else the error names it); a size from a preset
    (``fit``) is scaled into the model's range, or mapped to its nearest aspect ratio.
    """
    width, height = size
    size_field = spec.field("size")
    if size_field is not None:
        if fit:
            width, height = fit_dimensions(width, height, size_field.min, size_field.max)
        return {"size": f"{width}*{height}"}
    width_field = spec.field("width")
    if width_field is not None and spec.field("height") is not None:
        if fit:
            width, height = fit_dimensions(width, height, width_field.min, width_field.max)
        return {"width": width, "height": height}
    ratio_field = spec.field("aspect_ratio")
    if ratio_field is not None and ratio_field.values and fit:
        return {"aspect_ratio": nearest_ratio(width, height, [str(v) for v in ratio_field.values])}
    allowed = (
        f"aspect_ratio: {ratio_field.describe_allowed()}"
        if ratio_field is not None
        else "omit width/height/size"
    )
    errors.append(FieldError("size", f"model {spec.id} does not take an output size", allowed))
    return {}


def fit_dimensions(
    width: int, height: int, low: float | None, high: float | None
) -> tuple[int, int]:
    """Scale (width, height) so both sides lie in [low, high], keeping the ratio as far as possible."""
    factor = 1.0
    if high is not None and max(width, height) > high:
        factor = high / max(width, height)
    if low is not None and min(width, height) * factor < low:
        factor = low / min(width, height)
    w, h = (round(width * factor / 8) * 8, round(height * factor / 8) * 8)
    clamp = lambda v: int(min(high or v, max(low or v, v)))  # noqa: E731
    return clamp(w), clamp(h)


def nearest_ratio(width: int, height: int, ratios: list[str]) -> str:
    """The ratio among ``ratios`` (``W:H`` strings) closest to ``width:height``."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, _, h = ratio.partition(":")
        return abs(math.log(float(w) / float(h)) - target)

    return min(ratios, key=distance)


def _route(
    catalogue: Catalogue, operation: Operation, options: OperationOptions, model: str | None
) -> list[ModelSpec]:
    """The model, or with ``options.provider`` the quality tier's route (domain.routes)."""
    if not isinstance(options, GenerateOptions) or options.provider is None:
        return [catalogue.resolve(operation, model)]
    tier = options.quality or (
        load_create_studio().template(options.template_id).quality if options.template_id else None
    )
    return resolve_route(catalogue, operation, options.provider, tier, options.model)


def _honouring(
    route: list[ModelSpec], inputs_for: Callable[[ModelSpec, bool], dict[str, Any]]
) -> tuple[list[ModelSpec], list[dict[str, Any]]]:
    """The route's entries that can do what was asked, with their validated inputs.

    The first entry must (its error names the field); a fallback that cannot take a requested
    option (``output_format=jpeg`` on a png-only model) leaves the route rather than deliver
    something else, and its price no longer counts toward the reservation.
    """
    first, *rest = route
    kept = [(first, first.validate_inputs(inputs_for(first, True)))]
    for spec in rest:
        try:
            kept.append((spec, spec.validate_inputs(inputs_for(spec, False))))
        except InvalidRequestError:
            continue
    return [spec for spec, _ in kept], [inputs for _, inputs in kept]


def compose_request(
    catalogue: Catalogue,
    operation: Operation,
    user_id: str | None,
    options: OperationOptions,
    *,
    prompt: str | None = None,
    images: Mapping[ImageRole, BlobRef | Sequence[BlobRef]] | None = None,
    params: Mapping[str, Any] | None = None,
    label: str | None = None,
    operation_id: str | None = None,
    pipeline_id: str | None = None,
    step: str | None = None,
    budget_reservation_id: str | None = None,
    idempotency_key: str | None = None,
) -> OperationRequest:
    """Resolve the model, build and validate its inputs, and name the operation (pure: no I/O).

    Create Studio options (template, aspect ratio, style, quality) apply to text-to-image.
    Raises ``InvalidRequestError`` naming every bad field.
    """
    if not user_id:
        raise InvalidRequestError(
            "every operation belongs to a user", [FieldError("user_id", "required", "a user id")]
        )
    size, fit, model = options.output_size(), False, options.model
    if isinstance(options, GenerateOptions) and prompt is not None:
        plan = plan_create(
            load_create_studio(),
            prompt=prompt,
            model=options.model,
            template_id=options.template_id,
            aspect_ratio=options.aspect_ratio,
            style_preset=options.style_preset,
            quality=options.quality,
            explicit_size=size,
        )
        prompt, size, fit, model = plan.prompt, plan.size, plan.fit_size, plan.model
    route, entries = _honouring(
        _route(catalogue, operation, options, model),
        lambda spec, first: build_inputs(
            spec,
            prompt=prompt,
            images=images,
            size=size,
            fit_size=fit or not first,
            params={**options.model_params(), **(params or {})},
        ),
    )
    spec, inputs = route[0], entries[0]
    try:
        return OperationRequest(
            operation_id=operation_id
            or new_operation_id(operation.value, user_id, idempotency_key),
            user_id=user_id,
            operation=operation.value,
            model_id=spec.id,
            inputs=inputs,
            num_variations=options.num_variations,
            pipeline_id=pipeline_id,
            step=step,
            label=label,
            budget_reservation_id=budget_reservation_id,
            fallbacks=[
                RouteEntry(model_id=m.id, inputs=i)
                for m, i in zip(route[1:], entries[1:], strict=True)
            ],
        )
    except ValueError as exc:
        raise InvalidRequestError(
            "invalid request",
            [FieldError("user_id", str(exc).splitlines()[0], "letters, digits and ._@:-")],
        ) from None
