"""Turning a planned step and its upstream outputs into concrete runs, and finding reusable ones.

Shared by the worker (``prepare_step``, ``reserve_pipeline``) and the client's quote, so the price
a user is shown for a resume is computed the same way the run decides what to reuse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from blobs.imaging import best_index
from blobs.store import BlobNotFoundError, BlobStore
from contracts.errors import FieldError, InvalidRequestError
from contracts.operation import BlobRef, OperationRequest, StoredOutput
from domain.options import GenerateOptions, OperationOptions, parse_options
from domain.pipelines.definition import StepDefinition
from domain.pipelines.fingerprint import (
    crop_fingerprint,
    gate_fingerprint,
    is_deterministic,
    request_fingerprint,
)
from domain.pipelines.plan import PipelinePlan, PlannedStep
from domain.pipelines.resolve import RunInputs, resolve_runs
from domain.requests import compose_request
from ledger.step_cache import StepCache
from providers.catalogue import Catalogue, ImageRole, Operation


def step_request(
    catalogue: Catalogue,
    step: StepDefinition,
    run: RunInputs,
    *,
    user_id: str,
    pipeline_id: str,
    run_index: int,
    runs: int,
) -> OperationRequest:
    """The child operation's request for one run of a catalogue step."""
    operation = Operation(step.operation)
    options_type = GenerateOptions if operation is Operation.TEXT_TO_IMAGE else OperationOptions
    spec = catalogue.resolve(operation, step.model)
    options = parse_options(
        options_type, {**step.options, "model": spec.id, "num_variations": step.variations}
    )
    suffix = f".{run_index}" if runs > 1 else ""
    return compose_request(
        catalogue,
        operation,
        user_id,
        options,
        prompt=run.prompt,
        images={
            ImageRole(role): refs if len(refs) > 1 else refs[0] for role, refs in run.images.items()
        },
        params=step.params,
        label=f"{step.name} ({step.operation})",
        operation_id=f"{pipeline_id}.{step.name}{suffix}",
        pipeline_id=pipeline_id,
        step=step.name,
        budget_reservation_id=pipeline_id,
    )


def run_fingerprint(
    catalogue: Catalogue, step: StepDefinition, run: RunInputs, request: OperationRequest | None
) -> tuple[str, bool]:
    """The run's fingerprint, and whether equal fingerprints give equal outputs."""
    if request is None:
        return crop_fingerprint(run.images["base"][0].sha256, list(step.formats)), True
    spec = catalogue.get(request.model_id)
    return request_fingerprint(request), is_deterministic(spec, request)


def find_reusable(
    cache: StepCache, blobs: BlobStore, fingerprint: str, user_id: str, lineage: list[str]
) -> tuple[list[StoredOutput], str] | None:
    """Stored outputs for ``fingerprint`` whose blobs are all still present and intact."""
    for candidate in cache.candidates(fingerprint, user_id, lineage=lineage):
        if all(o.blob is None or blobs.verify(o.blob) for o in candidate.outputs):
            return candidate.outputs, candidate.pipeline_id
    return None


def external_blob(blobs: BlobStore) -> Callable[[str], BlobRef]:
    """A lookup from ``blob:<sha256>`` to its stored ``BlobRef``; anything else is refused."""

    def lookup(text: str) -> BlobRef:
        if not text.startswith("blob:"):
            raise InvalidRequestError(
                "external inputs must be stored first",
                [FieldError("inputs", f"{text!r} is not stored")],
            )
        try:
            return blobs.get(text.removeprefix("blob:"))
        except (BlobNotFoundError, ValueError):
            raise InvalidRequestError(
                "missing input file", [FieldError("inputs", f"{text} is not in the blob store")]
            ) from None

    return lookup


def local_best(blobs: BlobStore, outputs: dict[str, list[StoredOutput]]) -> Callable[[str], int]:
    """A chooser of the most detailed stored output of a step (for ``step.best`` references)."""

    def best(step: str) -> int:
        return best_index([blobs.read_bytes(o.blob) for o in outputs[step] if o.blob is not None])

    return best


@dataclass(frozen=True)
class ResumeQuote:
    """The full price, what a resume would cost, and which steps it can reuse."""

    full_usd: Decimal
    resume_usd: Decimal
    """Everything that will run (held up front, including what waits for approval)."""
    reusable_steps: frozenset[str]
    now_usd: Decimal
    """The part of ``resume_usd`` that runs before any approval."""
    conditional_steps: frozenset[str] = frozenset()


def shown_outputs(
    planned: PlannedStep, outputs: dict[str, list[StoredOutput]]
) -> list[StoredOutput]:
    """What a gate shows its reviewer: the outputs of its ``show`` steps, in order."""
    assert planned.step.approval is not None
    return [o for name in planned.step.approval.show for o in outputs[name]]


def earlier_decision(
    cache: StepCache,
    blobs: BlobStore,
    planned: PlannedStep,
    outputs: dict[str, list[StoredOutput]],
    *,
    user_id: str,
    lineage: list[str],
) -> list[StoredOutput] | None:
    """What an earlier run of this resume chain approved at this gate, for the same outputs."""
    assert planned.step.approval is not None
    fingerprint = gate_fingerprint(
        planned.step.name, shown_outputs(planned, outputs), planned.step.approval.choose
    )
    hit = find_reusable(cache, blobs, fingerprint, user_id, lineage)
    return hit[0] if hit else None


def check_local_budget(plan: PipelinePlan, blobs: BlobStore, max_pixels: int) -> None:
    """Refuse, at quote time, a free local step whose stored input is over the pixel budget
    (the step would refuse it from its header anyway; this says so before anything is held).

    Raises:
        InvalidRequestError: naming ``steps.<step>.inputs.<role>`` and the image's size.
    """
    lookup = external_blob(blobs)
    errors = []
    for planned in plan.steps:
        if planned.spec is not None or planned.is_gate:
            continue
        for where, text in planned.step.references():
            if not text.startswith("blob:"):
                continue  # an earlier step's output: checked by the step when it runs
            blob = lookup(text)
            if blob.width and blob.height and blob.width * blob.height > max_pixels:
                errors.append(
                    FieldError(
                        f"steps.{planned.step.name}.{where}",
                        f"image is {blob.width}x{blob.height}, over the local step budget of "
                        f"{max_pixels} pixels",
                    )
                )
    if errors:
        raise InvalidRequestError("an input is too large for a free local step", errors)


def quote_with_reuse(
    plan: PipelinePlan,
    catalogue: Catalogue,
    cache: StepCache,
    blobs: BlobStore,
    *,
    user_id: str,
    pipeline_id: str,
    lineage: list[str],
) -> ResumeQuote:
    """Walk the steps in order; a step is free when every one of its runs has reusable outputs."""
    outputs: dict[str, list[StoredOutput]] = {}
    reusable: set[str] = set()
    for planned in plan.steps:
        if any(dep not in outputs for dep in planned.depends_on):
            continue
        if planned.is_gate:  # a decision is reused only from the run's own resume chain
            approved = earlier_decision(
                cache, blobs, planned, outputs, user_id=user_id, lineage=lineage
            )
            if approved is not None:
                reusable.add(planned.step.name)
                outputs[planned.step.name] = approved
            continue
        fan_out = planned.fan_out.step if planned.fan_out else None
        runs = resolve_runs(
            planned.step, fan_out, outputs, local_best(blobs, outputs), external_blob(blobs)
        )
        produced: list[StoredOutput] = []
        for index, run in enumerate(runs):
            request = None
            if planned.spec is not None:
                request = step_request(
                    catalogue,
                    planned.step,
                    run,
                    user_id=user_id,
                    pipeline_id=pipeline_id,
                    run_index=index,
                    runs=len(runs),
                )
            fingerprint, _ = run_fingerprint(catalogue, planned.step, run, request)
            hit = find_reusable(cache, blobs, fingerprint, user_id, lineage)
            if hit is None:
                break
            produced += hit[0]
        else:
            reusable.add(planned.step.name)
            outputs[planned.step.name] = produced
    lines = plan.lines(skip=frozenset(reusable))
    conditional = plan.conditional() - reusable
    now = plan.lines(skip=frozenset(reusable) | conditional)
    return ResumeQuote(
        full_usd=plan.worst_case,
        resume_usd=sum((amount for _, amount in lines.values()), Decimal("0")),
        reusable_steps=frozenset(reusable),
        now_usd=sum((amount for _, amount in now.values()), Decimal("0")),
        conditional_steps=conditional,
    )
