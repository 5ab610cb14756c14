"""Pre-flight: validate against the catalogue, then reserve quota and budget atomically.

Runs before anything is paid. A refusal is final (non-retryable) and carries the structured
detail the backend shows its user; a database hiccup is retried by Temporal.
"""

from __future__ import annotations

from temporalio import activity

from activities.failures import invalid_request, quota_exceeded
from activities.resources import StudioResources
from activities.wait import poll_policy_for
from providers.catalogue import Operation
from studio.blobs import BlobNotFoundError
from studio.contracts import BlobRef, OperationRequest, PreparedOperation
from studio.errors import FieldError, InvalidRequestError, QuotaExceededError


class PreflightActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources

    @activity.defn(name="reserve_operation")
    def reserve_operation(self, request: OperationRequest) -> PreparedOperation:
        try:
            prepared = self._validate(request)
            common = {
                "reservation_id": prepared.reservation_id,
                "operation_id": request.operation_id,
                "category": prepared.quota_category,
                "units": prepared.quantity,
                "unit_price": prepared.unit_price_usd,
                "model_id": request.model_id,
                "workflow_id": activity.info().workflow_id,
            }
            if request.budget_reservation_id:
                # A pipeline step: its pipeline already holds the budget; move this step's share.
                reservation = self._r.ledger.draw(
                    pipeline_id=request.budget_reservation_id, **common
                )
            else:
                reservation = self._r.ledger.reserve(
                    user_id=request.user_id, operation=request.operation, **common
                )
        except InvalidRequestError as exc:
            raise invalid_request(exc) from None
        except QuotaExceededError as exc:
            raise quota_exceeded(exc) from None
        activity.logger.info(
            "reserved %s x %s USD of %s for %s (%s)",
            reservation.units,
            reservation.unit_price,
            reservation.category,
            request.user_id,
            request.operation_id,
        )
        return prepared

    def _validate(self, request: OperationRequest) -> PreparedOperation:
        try:
            operation = Operation(request.operation)
        except ValueError:
            raise InvalidRequestError(
                f"unknown operation {request.operation!r}",
                [FieldError("operation", "unknown operation", "one of " + ", ".join(Operation))],
            ) from None
        spec = self._r.catalogue.resolve(operation, request.model_id)
        inputs = spec.validate_inputs(request.inputs)
        missing = [
            FieldError(f"inputs.{name}", f"blob {ref.sha256[:12]}… is not in the blob store")
            for name, ref in _blob_refs(inputs)
            if not self._blob_present(ref)
        ]
        if missing:
            raise InvalidRequestError("input images are missing", missing)
        return PreparedOperation(
            request=request,
            model_path=spec.path,
            inputs=inputs,
            output_kind=spec.output.kind,
            output_format=inputs.get("output_format") or spec.output.formats[0],
            unit_price_usd=spec.price_usd,
            quantity=request.num_variations,
            quota_category=spec.quota_category.value,
            reservation_id=f"res:{request.operation_id}",
            poll=poll_policy_for(
                spec,
                self._r.settings.webhook_fallback_seconds
                if self._r.settings.webhook_public_url
                else None,
            ),
            deterministic=spec.deterministic,
            takes_seed=spec.field("seed") is not None,
            attempt_timeout_seconds=self._r.settings.activity_start_to_close_seconds,
            provider_resubmits=self._r.settings.provider_resubmits,
            submit_task_queue=self._r.settings.submit_task_queue
            if self._r.settings.submit_rate_per_second
            else None,
        )

    def _blob_present(self, ref: BlobRef) -> bool:
        try:
            self._r.blobs.get(ref.sha256)
        except BlobNotFoundError:
            return False
        return self._r.blobs.exists(ref)


def _blob_refs(inputs: dict) -> list[tuple[str, BlobRef]]:
    refs: list[tuple[str, BlobRef]] = []
    for name, value in inputs.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, dict) and "sha256" in item:
                refs.append((name, BlobRef.model_validate(item)))
    return refs
