"""Settle or release a reservation: the only places money moves after pre-flight.

Both are keyed by the operation id in the ledger, so a retried or replayed activity is a no-op.
"""

from __future__ import annotations

from temporalio import activity

from activities.resources import StudioResources
from studio.contracts import ReleaseRequest, Settlement, SettleRequest


class UsageActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources

    @activity.defn(name="settle_operation")
    def settle_operation(self, request: SettleRequest) -> Settlement:
        info = self._r.ledger.settle(
            operation_id=request.operation_id,
            units_charged=request.units_charged,
            delivered_predictions=request.predictions,
        )
        self._record_undelivered(
            request.operation_id, request.undelivered_predictions, request.model_id
        )
        activity.logger.info("settled %s: charged %s USD", request.operation_id, info.charged)
        return Settlement(
            operation_id=info.operation_id,
            charged_usd=info.charged,
            released_usd=info.released,
            already_settled=info.already_settled,
        )

    @activity.defn(name="release_reservation")
    def release_reservation(self, request: ReleaseRequest) -> Settlement:
        info = self._r.ledger.release(operation_id=request.operation_id, reason=request.reason)
        self._record_undelivered(
            request.operation_id, request.undelivered_predictions, request.model_id
        )
        activity.logger.info("released %s: %s", request.operation_id, request.reason)
        return Settlement(
            operation_id=info.operation_id,
            charged_usd=info.charged,
            released_usd=info.released,
            already_settled=info.already_settled,
        )

    def _record_undelivered(
        self, operation_id: str, predictions: list[str], model_id: str | None
    ) -> None:
        """Completed at WaveSpeed (so billed) but not delivered: our cost, not the user's."""
        if not predictions or model_id is None:
            return
        price = self._r.catalogue.price(model_id)
        for prediction_id in predictions:
            self._r.ledger.record_provider_cost(
                operation_id=operation_id,
                prediction_id=prediction_id,
                amount=price,
                note="completed at WaveSpeed but not delivered",
            )
