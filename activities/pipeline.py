"""Pipeline activities: reserve the quote, prepare each step (reuse or run), record results, and
the free local steps (ranking, crops)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from activities.failures import invalid_request, quota_exceeded
from activities.resources import StudioResources
from blobs.imaging import ImageTooLargeError, best_index, crop_to_sizes
from contracts.errors import InvalidRequestError, QuotaExceededError
from contracts.failures import FailureType
from contracts.operation import BlobRef, OutputKind, StoredOutput
from contracts.pipeline import (
    CropRequest,
    GateLookup,
    GateRecord,
    PipelineReservation,
    PipelineRunRequest,
    PreparedStep,
    StepLayout,
    StepRecord,
    StepRunSpec,
)
from domain.create_studio import load_create_studio
from domain.pipelines.definition import load_definition, parse_reference
from domain.pipelines.fingerprint import gate_fingerprint
from domain.pipelines.plan import PlannedStep, plan_pipeline
from domain.pipelines.resolve import RunInputs
from domain.pipelines.steps import (
    check_local_budget,
    external_blob,
    find_reusable,
    quote_with_reuse,
    run_fingerprint,
    step_request,
)
from ledger.step_cache import StepCache
from ledger.values import RESERVATION_TTL


class PipelineActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources
        self._cache = StepCache(resources.ledger.engine)
        self._local_slots = threading.BoundedSemaphore(resources.settings.local_step_concurrency)

    @activity.defn(name="reserve_pipeline")
    def reserve_pipeline(self, request: PipelineRunRequest) -> PipelineReservation:
        """Validate the definition and hold the worst case of every step that will really run."""
        try:
            plan = plan_pipeline(load_definition(request.definition), self._r.catalogue)
            check_local_budget(plan, self._r.blobs, self._r.settings.max_local_step_pixels)
            lookup = external_blob(self._r.blobs)
            externals = {
                text: lookup(text)
                for step in plan.definition.steps
                for _, text in step.references()
                if text.startswith("blob:")
            }
            self._cache.record_run(
                pipeline_id=request.pipeline_id,
                user_id=request.user_id,
                name=plan.definition.name,
                definition=request.definition,
                resume_of=request.resume_of,
                quoted=plan.worst_case,
            )
            lineage = self._cache.lineage(request.pipeline_id)
            quote = quote_with_reuse(
                plan,
                self._r.catalogue,
                self._cache,
                self._r.blobs,
                user_id=request.user_id,
                pipeline_id=request.pipeline_id,
                lineage=lineage,
            )
            lines = plan.lines(skip=quote.reusable_steps)
            if lines:
                self._r.ledger.reserve_pipeline(
                    pipeline_id=request.pipeline_id,
                    user_id=request.user_id,
                    lines=lines,
                    workflow_id=activity.info().workflow_id,
                    ttl=RESERVATION_TTL + plan.gate_wait(),  # gates may hold it for days
                )
        except InvalidRequestError as exc:
            raise invalid_request(exc) from None
        except QuotaExceededError as exc:
            metrics.refused(exc.detail)
            raise quota_exceeded(exc) from None
        return PipelineReservation(
            steps=[_layout(p) for p in plan.steps],
            externals=externals,
            quoted_usd=quote.resume_usd,
            full_usd=quote.full_usd,
            reusable_steps=sorted(quote.reusable_steps),
            lineage=lineage,
        )

    @activity.defn(name="prepare_step")
    def prepare_step(self, spec: StepRunSpec) -> PreparedStep:
        """Build the run's request and fingerprint; return stored outputs if they can be reused."""
        definition = load_definition({"name": "step", "steps": [spec.step]})
        step = definition.steps[0]
        run = RunInputs(images=spec.images, prompt=spec.prompt)
        try:
            request = None
            if step.operation != "crop":
                request = step_request(
                    self._r.catalogue,
                    step,
                    run,
                    user_id=spec.user_id,
                    pipeline_id=spec.pipeline_id,
                    run_index=spec.run_index,
                    runs=spec.runs,
                )
        except InvalidRequestError as exc:
            raise invalid_request(exc) from None
        fingerprint, deterministic = run_fingerprint(self._r.catalogue, step, run, request)
        hit = find_reusable(self._cache, self._r.blobs, fingerprint, spec.user_id, spec.lineage)
        if hit is not None:
            outputs, source = hit
            self._r.ledger.record_cache_hit(
                user_id=spec.user_id,
                operation_id=request.operation_id if request else f"{spec.pipeline_id}.{step.name}",
                fingerprint=fingerprint,
                source=source,
            )
            return PreparedStep(
                request=request,
                fingerprint=fingerprint,
                deterministic=deterministic,
                cached=outputs,
                cached_from=source,
            )
        return PreparedStep(request=request, fingerprint=fingerprint, deterministic=deterministic)

    @activity.defn(name="record_step")
    def record_step(self, record: StepRecord) -> None:
        self._cache.record(
            fingerprint=record.fingerprint,
            user_id=record.user_id,
            pipeline_id=record.pipeline_id,
            step=record.step,
            run_index=record.run_index,
            deterministic=record.deterministic,
            outputs=record.outputs,
            cost=record.cost_usd,
        )

    @activity.defn(name="find_gate_decision")
    def find_gate_decision(self, lookup: GateLookup) -> list[StoredOutput] | None:
        """What an earlier run of this resume chain approved for exactly these shown outputs."""
        fingerprint = gate_fingerprint(lookup.gate, lookup.shown, lookup.choose)
        hit = find_reusable(self._cache, self._r.blobs, fingerprint, lookup.user_id, lookup.lineage)
        return hit[0] if hit else None

    @activity.defn(name="record_gate_decision")
    def record_gate_decision(self, record: GateRecord) -> None:
        """Remember an approval, so resuming this run does not ask again for the same outputs.

        Recorded as non-deterministic: only runs that resume this one may reuse it.
        """
        self._cache.record(
            fingerprint=gate_fingerprint(record.gate, record.shown, record.choose),
            user_id=record.user_id,
            pipeline_id=record.pipeline_id,
            step=record.gate,
            run_index=0,
            deterministic=False,
            outputs=record.chosen,
            cost=Decimal("0"),
        )

    @activity.defn(name="release_pipeline")
    def release_pipeline(self, pipeline_id: str, status: str) -> Decimal:
        released = self._r.ledger.release_pipeline(
            pipeline_id=pipeline_id, reason=f"pipeline {status}"
        )
        self._cache.set_status(pipeline_id, status)
        return released

    @activity.defn(name="rank_images")
    def rank_images(self, images: list[BlobRef]) -> int:
        with self._local_slots, _within_budget("rank"):
            return best_index(
                [self._r.blobs.read_bytes(b) for b in images],
                max_pixels=self._r.settings.max_local_step_pixels,
            )

    @activity.defn(name="crop_images")
    def crop_images(self, request: CropRequest) -> list[StoredOutput]:
        formats = load_create_studio().platform_formats
        sizes = [(formats[name].width, formats[name].height) for name in request.formats]
        with self._local_slots, _within_budget("crop"):
            cropped = crop_to_sizes(
                self._r.blobs.read_bytes(request.image),
                sizes,
                max_pixels=self._r.settings.max_local_step_pixels,
            )
        outputs = [
            StoredOutput(
                kind=OutputKind.IMAGE, blob=self._r.blobs.put_bytes(data, OutputKind.IMAGE)
            )
            for data in cropped
        ]
        self._r.owners.grant(
            request.user_id, [o.blob.sha256 for o in outputs if o.blob is not None]
        )
        return outputs


@contextmanager
def _within_budget(step: str) -> Iterator[None]:
    """An image over the local pixel budget fails the step for good (a retry decodes the same)."""
    try:
        yield
    except ImageTooLargeError as exc:
        raise ApplicationError(
            f"{step}: {exc}", type=FailureType.INVALID_REQUEST, non_retryable=True
        ) from exc


def _layout(planned: PlannedStep) -> StepLayout:
    refs = [parse_reference(text) for _, text in planned.step.references()]
    return StepLayout(
        name=planned.step.name,
        operation=planned.step.operation,
        model_id=planned.spec.id if planned.spec else None,
        depends_on=list(planned.depends_on),
        fan_out=planned.fan_out.step if planned.fan_out else None,
        best_of=sorted({r.step for r in refs if r is not None and r.selector == "best"}),
        planned_runs=planned.runs,
    )
