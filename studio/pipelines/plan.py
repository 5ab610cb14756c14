"""Check a pipeline definition before anything runs, and work out its shape and worst-case cost.

Every error names the step and the field (``steps.upscale.inputs.base``): unknown models and
operations, missing or cyclic references, an output kind that cannot feed the next step (a 3D
model into an upscaler), ambiguous references, and parameters the model would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from providers.catalogue import Catalogue, ImageRole, ModelSpec, Operation
from studio.contracts import BlobRef, OutputKind
from studio.create_studio import load_create_studio
from studio.errors import FieldError, InvalidRequestError
from studio.options import GenerateOptions, OperationOptions, parse_options
from studio.pipelines.definition import (
    PipelineDefinition,
    Reference,
    StepDefinition,
    parse_reference,
)
from studio.requests import compose_request

PLACEHOLDER = BlobRef(
    sha256="0" * 64, size=1, media_type="image/png", location="placeholder://", format="png"
)


@dataclass(frozen=True)
class PlannedStep:
    step: StepDefinition
    spec: ModelSpec | None
    """None for local (free) operations such as ``crop``."""
    depends_on: tuple[str, ...]
    runs: int
    """How many times the step runs (more than one when it fans out over an earlier step)."""
    outputs: int
    output_kind: OutputKind
    fan_out: Reference | None

    @property
    def units(self) -> int:
        return self.runs * self.step.variations if self.spec else 0

    @property
    def unit_price(self) -> Decimal:
        return self.spec.price_usd if self.spec else Decimal("0")

    @property
    def worst_case(self) -> Decimal:
        return self.unit_price * self.units

    @property
    def category(self) -> str | None:
        return self.spec.quota_category.value if self.spec else None


@dataclass(frozen=True)
class PipelinePlan:
    definition: PipelineDefinition
    steps: tuple[PlannedStep, ...]
    """In dependency order."""

    def step(self, name: str) -> PlannedStep:
        return next(p for p in self.steps if p.step.name == name)

    @property
    def worst_case(self) -> Decimal:
        return sum((p.worst_case for p in self.steps), Decimal("0"))

    def lines(self, skip: frozenset[str] = frozenset()) -> dict[str, tuple[int, Decimal]]:
        """Units and USD per quota category, for every step not in ``skip``."""
        totals: dict[str, tuple[int, Decimal]] = {}
        for planned in self.steps:
            if planned.category is None or planned.step.name in skip:
                continue
            units, amount = totals.get(planned.category, (0, Decimal("0")))
            totals[planned.category] = (units + planned.units, amount + planned.worst_case)
        return totals


def plan_pipeline(definition: PipelineDefinition, catalogue: Catalogue) -> PipelinePlan:
    errors: list[FieldError] = []
    names = [s.name for s in definition.steps]
    for name in {n for n in names if names.count(n) > 1}:
        errors.append(FieldError(f"steps.{name}.name", "step names must be unique"))
    steps = {s.name: s for s in definition.steps}

    deps: dict[str, tuple[str, ...]] = {}
    for step in definition.steps:
        found = []
        for field, text in step.references():
            ref = parse_reference(text)
            if ref is None:
                if text.startswith("blob:") or field != "prompt_from":
                    continue
                errors.append(
                    FieldError(f"steps.{step.name}.{field}", f"{text!r} is not a step reference")
                )
            elif ref.step not in steps:
                errors.append(
                    FieldError(
                        f"steps.{step.name}.{field}",
                        f"unknown step {ref.step!r}",
                        "one of " + ", ".join(names),
                    )
                )
            elif ref.step == step.name:
                errors.append(
                    FieldError(f"steps.{step.name}.{field}", "a step cannot use its own output")
                )
            else:
                found.append(ref.step)
        deps[step.name] = tuple(dict.fromkeys(found))
    order = _topological(definition, deps, errors)
    if errors:
        raise InvalidRequestError(f"invalid pipeline {definition.name}", errors)

    planned: dict[str, PlannedStep] = {}
    for name in order:
        result = _plan_step(steps[name], deps[name], planned, catalogue, errors)
        if result is not None:
            planned[name] = result
    if errors:
        raise InvalidRequestError(f"invalid pipeline {definition.name}", errors)
    return PipelinePlan(definition, tuple(planned[n] for n in order))


def _topological(
    definition: PipelineDefinition, deps: dict[str, tuple[str, ...]], errors: list[FieldError]
) -> list[str]:
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name) :] + [name]
            errors.append(
                FieldError(f"steps.{name}.inputs", "cyclic reference: " + " → ".join(cycle))
            )
            return
        state[name] = "visiting"
        for dep in deps.get(name, ()):
            if dep in deps:
                visit(dep, [*path, name])
        state[name] = "done"
        order.append(name)

    for step in definition.steps:  # declaration order breaks ties, so plans are stable
        visit(step.name, [])
    return order


def _plan_step(
    step: StepDefinition,
    depends_on: tuple[str, ...],
    planned: dict[str, PlannedStep],
    catalogue: Catalogue,
    errors: list[FieldError],
) -> PlannedStep | None:
    where = f"steps.{step.name}"
    before = len(errors)
    fan_out: Reference | None = None
    images: dict[ImageRole, list[BlobRef]] = {}
    for field, text in step.references():
        ref = parse_reference(text)
        if ref is None or ref.step not in planned:
            if field.startswith("inputs.") and ref is None:
                images.setdefault(_role(field, where, errors), []).append(PLACEHOLDER)
            continue
        source = planned[ref.step]
        wanted = OutputKind.TEXT if field == "prompt_from" else OutputKind.IMAGE
        if source.output_kind is not wanted:
            errors.append(
                FieldError(
                    f"{where}.{field}",
                    f"step {ref.step!r} produces {source.output_kind.value}, which cannot feed this field",
                    f"a step that produces {wanted.value}",
                )
            )
            continue
        if ref.selector == "only" and source.outputs > 1:
            errors.append(
                FieldError(
                    f"{where}.{field}",
                    f"step {ref.step!r} produces {source.outputs} outputs",
                    f"{ref.step}[*] (one run each), {ref.step}[i] or {ref.step}.best",
                )
            )
        if ref.selector == "index" and ref.index >= source.outputs:
            errors.append(
                FieldError(
                    f"{where}.{field}", f"step {ref.step!r} has only {source.outputs} output(s)"
                )
            )
        if ref.selector == "each":
            if fan_out is not None:
                errors.append(
                    FieldError(f"{where}.{field}", "a step can fan out over one reference only")
                )
            fan_out = ref
        if field.startswith("inputs."):
            images.setdefault(_role(field, where, errors), []).append(PLACEHOLDER)
    runs = planned[fan_out.step].outputs if fan_out and fan_out.step in planned else 1

    if step.operation == "crop":
        formats = load_create_studio().platform_formats
        unknown = [f for f in step.formats if f not in formats]
        if not step.formats or unknown:
            errors.append(
                FieldError(
                    f"{where}.formats",
                    f"unknown format(s) {unknown}" if unknown else "required",
                    "any of " + ", ".join(formats),
                )
            )
        if list(images) != [ImageRole.BASE]:
            errors.append(FieldError(f"{where}.inputs.base", "crop takes exactly one base image"))
        if len(errors) > before:
            return None
        return PlannedStep(
            step, None, depends_on, runs, runs * len(step.formats), OutputKind.IMAGE, fan_out
        )

    operation = Operation(step.operation)
    try:
        spec = catalogue.resolve(operation, step.model)
        options_type = GenerateOptions if operation is Operation.TEXT_TO_IMAGE else OperationOptions
        options = parse_options(
            options_type, {**step.options, "model": spec.id, "num_variations": step.variations}
        )
        compose_request(
            catalogue,
            operation,
            "pipeline-check",
            options,
            prompt=step.prompt
            if step.prompt is not None
            else ("placeholder" if step.prompt_from else None),
            images={role: refs if len(refs) > 1 else refs[0] for role, refs in images.items()},
            params=step.params,
        )
    except InvalidRequestError as exc:
        errors.extend(_step_errors(where, exc, catalogue, step))
        return None
    if len(errors) > before:
        return None
    return PlannedStep(
        step, spec, depends_on, runs, runs * step.variations, spec.output.kind, fan_out
    )


def _role(field: str, where: str, errors: list[FieldError]) -> ImageRole:
    name = field.removeprefix("inputs.").split("[")[0]
    try:
        return ImageRole(name)
    except ValueError:
        errors.append(
            FieldError(
                f"{where}.{field}", f"unknown image role {name!r}", "one of " + ", ".join(ImageRole)
            )
        )
        return ImageRole.BASE


def _step_errors(
    where: str, exc: InvalidRequestError, catalogue: Catalogue, step: StepDefinition
) -> list[FieldError]:
    """Re-address request errors to the step's own fields (params, inputs, prompt, model, options)."""
    try:
        spec = catalogue.resolve(Operation(step.operation), step.model)
    except InvalidRequestError:
        spec = None
    mapped = []
    for error in exc.errors or [FieldError("model", str(exc))]:
        field = error.field
        if field.startswith("inputs."):
            name = field.removeprefix("inputs.").split(".")[0]
            image_field = spec.field(name) if spec else None
            if image_field is not None and image_field.role is not None:
                field = f"inputs.{image_field.role.value}"
            else:
                field = "params." + field.removeprefix("inputs.")
        elif field.startswith("images."):
            field = "inputs." + field.removeprefix("images.")
        elif field == "size":
            field = "params.size"
        mapped.append(FieldError(f"{where}.{field}", error.message, error.allowed))
    return mapped
