"""Pre-flight: validate against the catalogue, then reserve quota and budget atomically.

Runs before anything is paid. A refusal is final (non-retryable) and carries the structured
detail the backend shows its user; a database hiccup is retried by Temporal.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities import metrics
from activities.failures import invalid_request, ownership_conflict, quota_exceeded
from activities.resources import StudioResources
from activities.wait import poll_policy_for
from blobs.store import BlobNotFoundError
from contracts.errors import (
    FieldError,
    InvalidRequestError,
    OwnershipConflictError,
    QuotaExceededError,
)
from contracts.operation import (
    BlobRef,
    OperationRequest,
    PreparedOperation,
    RouteStep,
    blob_refs,
)
from domain.quota import quota_category
from providers.catalogue import ModelSpec, Operation


class PreflightActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources

    @activity.defn(name="reserve_operation")
    def reserve_operation(self, request: OperationRequest) -> PreparedOperation:
        try:
            prepared = self._validate(request)
            self._hold(request, prepared)
        except InvalidRequestError as exc:
            raise invalid_request(exc) from None
        except QuotaExceededError as exc:
            metrics.refused(exc.detail)
            raise quota_exceeded(exc) from None
        except OwnershipConflictError as exc:
            raise ownership_conflict(exc) from None
        metrics.OPERATIONS_STARTED.labels(request.operation, request.model_id).inc()
        return prepared

    def _hold(self, request: OperationRequest, prepared: PreparedOperation) -> None:
        """Reserve the operation's quota and budget, or draw it from its pipeline's hold."""
        workflow_id = activity.info().workflow_id
        if request.budget_reservation_id:
            # A pipeline step: its pipeline already holds the budget; move this step's share.
            reservation = self._r.ledger.draw(
                pipeline_id=request.budget_reservation_id,
                reservation_id=prepared.reservation_id,
                operation_id=request.operation_id,
                category=prepared.quota_category,
                units=prepared.quantity,
                unit_price=prepared.unit_price_usd,
                model_id=request.model_id,
                workflow_id=workflow_id,
            )
        else:
            reservation = self._r.ledger.reserve(
                reservation_id=prepared.reservation_id,
                operation_id=request.operation_id,
                user_id=request.user_id,
                category=prepared.quota_category,
                units=prepared.quantity,
                unit_price=prepared.unit_price_usd,
                model_id=request.model_id,
                operation=request.operation,
                workflow_id=workflow_id,
            )
        activity.logger.info(
            "reserved %s x %s USD of %s for %s (%s)",
            reservation.units,
            reservation.unit_price,
            reservation.category,
            request.user_id,
            request.operation_id,
        )

    def _validate(self, request: OperationRequest) -> PreparedOperation:
        try:
            operation = Operation(request.operation)
        except ValueError:
            raise InvalidRequestError(
                f"unknown operation {request.operation!r}",
                [FieldError("operation", "unknown operation", "one of " + ", ".join(Operation))],
            ) from None
        steps = self._route(request, operation)
        first = steps[0]
        settings = self._r.settings
        return PreparedOperation(
            request=request,
            model_path=first.model_path,
            inputs=first.inputs,
            output_kind=self._r.catalogue.get(first.model_id).output.kind,
            output_format=first.output_format,
            unit_price_usd=max(step.unit_price_usd for step in steps),  # the route's ceiling
            quantity=request.num_variations,
            quota_category=quota_category(operation).value,
            reservation_id=f"res:{request.operation_id}",
            poll=first.poll,
            deterministic=self._r.catalogue.get(first.model_id).deterministic,
            takes_seed=first.takes_seed,
            attempt_timeout_seconds=settings.activity_start_to_close_seconds,
            provider_resubmits=settings.provider_resubmits,
            submit_task_queue=settings.submit_task_queue
            if settings.submit_rate_per_second
            else None,
            provider=first.provider,
            synchronous=first.synchronous,
            route=steps if len(steps) > 1 or first.provider != "wavespeed" else [],
        )

    def _route(self, request: OperationRequest, operation: Operation) -> list[RouteStep]:
        """Every entry of the request's route, validated; providers without a key drop out
        (a route of one entry whose provider has no key is refused, naming the provider)."""
        catalogue = self._r.catalogue
        entries = [(catalogue.resolve(operation, request.model_id), request.inputs)]
        entries += [(catalogue.resolve(operation, e.model_id), e.inputs) for e in request.fallbacks]
        available = self._r.available()
        usable = [(spec, inputs) for spec, inputs in entries if spec.provider in available]
        if not usable:
            missing = ", ".join(sorted({spec.provider for spec, _ in entries}))
            raise InvalidRequestError(
                f"no key for {missing} on this worker",
                [
                    FieldError(
                        "options.provider", f"no key configured for {missing}", "another provider"
                    )
                ],
            )
        steps = [self._step(spec, inputs) for spec, inputs in usable]
        missing_blobs = [
            FieldError(f"inputs.{name}", f"blob {ref.sha256[:12]}… is not in the blob store")
            for step in steps
            for name, ref in blob_refs(step.inputs)
            if not self._blob_present(ref)
        ]
        if missing_blobs:
            raise InvalidRequestError("input images are missing", missing_blobs)
        return steps

    def _step(self, spec: ModelSpec, raw: dict[str, Any]) -> RouteStep:
        inputs = spec.validate_inputs(raw)
        settings = self._r.settings
        return RouteStep(
            model_id=spec.id,
            provider=spec.provider,
            model_path=spec.path,
            inputs=inputs,
            unit_price_usd=spec.price_usd,
            output_format=inputs.get("output_format") or spec.output.formats[0],
            synchronous=spec.synchronous,
            takes_seed=spec.field("seed") is not None,
            poll=poll_policy_for(
                spec,
                settings.webhook_fallback_seconds
                if settings.webhook_public_url and spec.provider == "wavespeed"
                else None,
            ),
        )

    def _blob_present(self, ref: BlobRef) -> bool:
        try:
            self._r.blobs.get(ref.sha256)
        except BlobNotFoundError:
            return False
        return self._r.blobs.exists(ref)
