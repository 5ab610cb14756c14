"""Settle or release a reservation: the only places money moves after pre-flight.

Both are keyed by the operation id in the ledger, so a retried or replayed activity is a no-op.
"""

from __future__ import annotations

from temporalio import activity

from activities import metrics
from activities.chaos import crash_point
from activities.resources import StudioResources
from contracts.operation import ReleaseRequest, RunEnding, Settlement, SettleRequest
from ledger.run_records import RunRecords


class UsageActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources

    @activity.defn(name="settle_operation")
    def settle_operation(self, request: SettleRequest) -> Settlement:
        crash_point("before_settle", request.operation_id)
        info = self._r.ledger.settle(
            operation_id=request.operation_id,
            units_charged=request.units_charged,
            delivered_predictions=request.predictions,
            delivered_blobs=request.delivered_blobs,
            amount=request.charged_usd,
            delivered_prices=request.delivered_prices,
        )
        crash_point("after_settle", request.operation_id)  # charged, not yet reported
        self._record_provider_costs(
            request.operation_id,
            request.model_id,
            request.undelivered_predictions,
            request.failed_predictions,
        )
        if not info.already_settled:
            partial = request.requested_units and request.units_charged < request.requested_units
            metrics.operation_finished(
                request.operation,
                request.model_id,
                "partial" if partial else "succeeded",
                request.started_at,
                info.charged,
            )
        activity.logger.info("settled %s: charged %s USD", request.operation_id, info.charged)
        return Settlement(
            operation_id=info.operation_id,
            charged_usd=info.charged,
            released_usd=info.released,
            already_settled=info.already_settled,
            state=info.state,
        )

    @activity.defn(name="release_reservation")
    def release_reservation(self, request: ReleaseRequest) -> Settlement:
        info = self._r.ledger.release(operation_id=request.operation_id, reason=request.reason)
        self._record_provider_costs(
            request.operation_id,
            request.model_id,
            request.undelivered_predictions,
            request.failed_predictions,
        )
        if not info.already_settled and request.operation and request.model_id:
            metrics.operation_finished(
                request.operation,
                request.model_id,
                "cancelled" if request.cancelled else "failed",
                request.started_at,
                info.charged,
            )
        activity.logger.info("released %s: %s", request.operation_id, request.reason)
        return Settlement(
            operation_id=info.operation_id,
            charged_usd=info.charged,
            released_usd=info.released,
            already_settled=info.already_settled,
            state=info.state,
        )

    @activity.defn(name="record_run_end")
    def record_run_end(self, ending: RunEnding) -> None:
        """Write the run's ending to its durable record (idempotent: the first ending stays)."""
        RunRecords(self._r.ledger.engine).finish(
            ending.run_id,
            status=ending.status,
            result=ending.result,
            cost_usd=ending.cost_usd,
            error=ending.error,
            user_id=ending.user_id,
            kind=ending.kind,
            operation=ending.operation,
        )

    def _record_provider_costs(
        self, operation_id: str, model_id: str | None, undelivered: list[str], failed: list[str]
    ) -> None:
        """What the provider billed us that the user does not pay: results we could not deliver
        (expired outputs, runs we cancelled mid-way) and, if the provider bills them, failures.
        The ledger records which provider from the prediction's submission record."""
        if model_id is None:
            return
        price = self._r.catalogue.price(model_id)
        billed = [(p, "billed by the provider, not delivered") for p in undelivered]
        if self._r.settings.provider_bills_failed:
            billed += [(p, "failed at the provider, billed anyway") for p in failed]
        for prediction_id, note in billed:
            self._r.ledger.record_provider_cost(
                operation_id=operation_id, prediction_id=prediction_id, amount=price, note=note
            )
