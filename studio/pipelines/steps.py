"""Turning a planned step and its upstream outputs into concrete runs, and finding reusable ones.

Shared by the worker (``prepare_step``, ``reserve_pipeline``) and the client's quote, so the price
a user is shown for a resume is computed the same way the run decides what to reuse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from providers.catalogue import Catalogue, ImageRole, Operation
from studio.blobs import BlobNotFoundError, BlobStore
from studio.contracts import BlobRef, OperationRequest, StoredOutput
from studio.errors import FieldError, InvalidRequestError
from studio.imaging import best_index
from studio.ledger.step_cache import StepCache
from studio.options import GenerateOptions, OperationOptions, parse_options
from studio.pipelines.definition import StepDefinition
from studio.pipelines.fingerprint import crop_fingerprint, is_deterministic, request_fingerprint
from studio.pipelines.plan import PipelinePlan
from studio.pipelines.resolve import RunInputs, resolve_runs
from studio.requests import compose_request


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
    def best(step: str) -> int:
        return best_index([blobs.local_path(o.blob) for o in outputs[step] if o.blob is not None])

    return best


@dataclass(frozen=True)
class ResumeQuote:
    full_usd: Decimal
    resume_usd: Decimal
    reusable_steps: frozenset[str]


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
    return ResumeQuote(
        full_usd=plan.worst_case,
        resume_usd=sum((amount for _, amount in lines.values()), Decimal("0")),
        reusable_steps=frozenset(reusable),
    )
