"""Check a pipeline definition before anything runs, and work out its shape and worst-case cost.

Every error names the step and the field (``steps.upscale.inputs.base``): unknown models and
operations, missing or cyclic references, an output kind that cannot feed the next step (a 3D
model into an upscaler), ambiguous references, and parameters the model would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from contracts.errors import FieldError, InvalidRequestError
from contracts.operation import BlobRef, OutputKind
from domain.create_studio import load_create_studio
from domain.options import GenerateOptions, OperationOptions, parse_options
from domain.pipelines.definition import (
    GATE_OPERATION,
    PipelineDefinition,
    Reference,
    StepDefinition,
    parse_reference,
)
from domain.quota import quota_category
from domain.requests import compose_request
from providers.catalogue import Catalogue, ImageRole, ModelSpec, Operation

PLACEHOLDER = BlobRef(
    sha256="0" * 64, size=1, media_type="image/png", location="placeholder://", format="png"
)


@dataclass(frozen=True)
class PlannedStep:
    """One validated step: its model, dependencies, how often it runs and what it costs at most."""

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
        """Paid units at most: runs times variations (0 for local steps)."""
        return self.runs * self.step.variations if self.spec else 0

    @property
    def unit_price(self) -> Decimal:
        """The model's price per unit (0 for local steps)."""
        return self.spec.price_usd if self.spec else Decimal("0")

    @property
    def worst_case(self) -> Decimal:
        """The most the step can cost: every variation of every run delivered."""
        return self.unit_price * self.units

    @property
    def category(self) -> str | None:
        """The plan counter the step draws on (None for local steps)."""
        return quota_category(Operation(self.step.operation)).value if self.spec else None

    @property
    def is_gate(self) -> bool:
        """An approval step: a person decides; nothing is paid or run."""
        return self.step.operation == GATE_OPERATION


@dataclass(frozen=True)
class PipelinePlan:
    """A whole validated pipeline: its steps in dependency order and the worst case."""

    definition: PipelineDefinition
    steps: tuple[PlannedStep, ...]
    """In dependency order."""

    def step(self, name: str) -> PlannedStep:
        """The planned step named ``name``."""
        return next(p for p in self.steps if p.step.name == name)

    @property
    def worst_case(self) -> Decimal:
        """The most the whole pipeline can cost."""
        return sum((p.worst_case for p in self.steps), Decimal("0"))

    def conditional(self) -> frozenset[str]:
        """Steps that run only once a person approves: everything downstream of a gate."""
        gated: set[str] = set()
        for planned in self.steps:  # dependency order: upstream steps are decided first
            if any(d in gated or self.step(d).is_gate for d in planned.depends_on):
                gated.add(planned.step.name)
        return frozenset(gated)

    def gate_wait(self) -> timedelta:
        """The longest the run can wait for people (every gate waiting its full timeout)."""
        return sum(
            (p.step.approval.wait for p in self.steps if p.step.approval is not None),
            timedelta(0),
        )

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
    """Validate a definition against the catalogue and plan it, before anything is reserved.

    Every step's request is built with placeholder images and checked as a real one would be, so a
    bad parameter fails here rather than halfway through a paid pipeline.

    Raises:
        InvalidRequestError: listing every problem, each named ``steps.<step>.<field>``.
    """
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
    _check_budget(list(planned.values()), errors)
    if errors:
        raise InvalidRequestError(f"invalid pipeline {definition.name}", errors)
    return PipelinePlan(definition, tuple(planned[n] for n in order))


MAX_STEP_RUNS = 100
"""Runs of one step (its fan-out); free local steps count too: their work is ours."""
MAX_PIPELINE_RUNS = 500
"""Runs of all steps together (three chained crops x 200 formats once quoted 40,000 at $0)."""


def _check_budget(planned: list[PlannedStep], errors: list[FieldError]) -> None:
    """Refuse, at quote time, a plan whose fan-out or total run count is over the caps."""
    for p in planned:
        if p.runs > MAX_STEP_RUNS:
            errors.append(
                FieldError(
                    f"steps.{p.step.name}.inputs",
                    f"fans out into {p.runs} runs",
                    f"at most {MAX_STEP_RUNS} runs per step",
                )
            )
    total = sum(p.runs for p in planned)
    if total > MAX_PIPELINE_RUNS:
        errors.append(
            FieldError("steps", f"{total} runs in all", f"at most {MAX_PIPELINE_RUNS} per pipeline")
        )


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
    """Plan one step whose dependencies are planned; None (with ``errors`` added) if it is wrong."""
    where = f"steps.{step.name}"
    if step.operation == GATE_OPERATION:
        return _plan_gate(step, depends_on, planned, errors)
    before = len(errors)
    if step.approval is not None:
        errors.append(FieldError(f"{where}.approval", "only approve steps take approval settings"))
    images, fan_out = _wire_references(step, planned, where, errors)
    runs = planned[fan_out.step].outputs if fan_out and fan_out.step in planned else 1
    if step.operation == "crop":
        _check_crop(step, images, where, errors)
        if len(errors) > before:
            return None
        return PlannedStep(
            step, None, depends_on, runs, runs * len(step.formats), OutputKind.IMAGE, fan_out
        )
    spec = _check_catalogue_step(step, images, catalogue, where, errors)
    if spec is None or len(errors) > before:
        return None
    return PlannedStep(
        step, spec, depends_on, runs, runs * step.variations, spec.output.kind, fan_out
    )


def _wire_references(
    step: StepDefinition, planned: dict[str, PlannedStep], where: str, errors: list[FieldError]
) -> tuple[dict[ImageRole, list[BlobRef]], Reference | None]:
    """Check each reference against the step it names: image placeholders per role, fan-out."""
    fan_out: Reference | None = None
    images: dict[ImageRole, list[BlobRef]] = {}
    for field, text in step.references():
        ref = parse_reference(text)
        if ref is None or ref.step not in planned:
            # A step that failed its own checks still stands for an input here: the error names
            # that step only, never a bogus "required" in the steps that use it.
            if field.startswith("inputs."):
                images.setdefault(_role(field, where, errors), []).append(PLACEHOLDER)
            continue
        source = planned[ref.step]
        if source.is_gate != ref.chosen:
            errors.append(_gate_reference_error(f"{where}.{field}", ref, source.is_gate))
            if field.startswith("inputs."):
                images.setdefault(_role(field, where, errors), []).append(PLACEHOLDER)
            continue
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
            name = f"{ref.step}.chosen" if ref.chosen else ref.step
            errors.append(
                FieldError(
                    f"{where}.{field}",
                    f"step {ref.step!r} produces {source.outputs} outputs",
                    f"{name}[*] (one run each), {name}[i]"
                    + ("" if ref.chosen else f" or {ref.step}.best"),
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
    return images, fan_out


def _check_crop(
    step: StepDefinition,
    images: dict[ImageRole, list[BlobRef]],
    where: str,
    errors: list[FieldError],
) -> None:
    """A local crop needs known platform formats and exactly one base image."""
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


def _check_catalogue_step(
    step: StepDefinition,
    images: dict[ImageRole, list[BlobRef]],
    catalogue: Catalogue,
    where: str,
    errors: list[FieldError],
) -> ModelSpec | None:
    """The step's model, once a request built from it (with placeholders) passes validation."""
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
    return spec


def _plan_gate(
    step: StepDefinition,
    depends_on: tuple[str, ...],
    planned: dict[str, PlannedStep],
    errors: list[FieldError],
) -> PlannedStep | None:
    """A gate runs once, costs nothing, and passes on what the person chose (or all it showed)."""
    where = f"steps.{step.name}"
    before = len(errors)
    stray = [f for f in GATE_STRAY_FIELDS if getattr(step, f)] + (
        ["variations"] if step.variations != 1 else []
    )
    for name in stray:
        errors.append(
            FieldError(
                f"{where}.{name}",
                "an approve step takes only approval settings",
                "approval: show, approvers, prompt, choose, timeout, on_timeout",
            )
        )
    if step.approval is None:
        errors.append(
            FieldError(f"{where}.approval", "required for an approve step", "approval.show: [step]")
        )
        return None
    kinds: set[OutputKind] = set()
    total = 0
    for index, text in enumerate(step.approval.show):
        ref = parse_reference(text)
        if ref is None or ref.selector != "only" or ref.chosen:
            errors.append(
                FieldError(
                    f"{where}.approval.show[{index}]",
                    f"{text!r} is not a step name",
                    "the name of an earlier step (all its outputs are shown)",
                )
            )
        elif ref.step in planned:
            kinds.add(planned[ref.step].output_kind)
            total += planned[ref.step].outputs
    if len(kinds) > 1:
        errors.append(
            FieldError(
                f"{where}.approval.show", "the shown steps produce different kinds of output"
            )
        )
    choose = step.approval.choose
    if choose is not None and total and choose > total:
        errors.append(
            FieldError(
                f"{where}.approval.choose",
                f"the shown steps produce {total} output(s)",
                f"1 to {total}",
            )
        )
    if len(errors) > before:
        return None
    kind = kinds.pop() if kinds else OutputKind.IMAGE
    return PlannedStep(step, None, depends_on, 1, choose or total, kind, None)


GATE_STRAY_FIELDS = ("model", "prompt", "prompt_from", "inputs", "params", "options", "formats")


def _gate_reference_error(field: str, ref: Reference, is_gate: bool) -> FieldError:
    if is_gate:
        return FieldError(
            field,
            f"step {ref.step!r} is an approve step: use what the person chose",
            f"{ref.step}.chosen, {ref.step}.chosen[i] or {ref.step}.chosen[*]",
        )
    return FieldError(
        field, f"step {ref.step!r} is not an approve step, so it has no .chosen outputs"
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
