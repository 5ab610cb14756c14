"""Routes of (provider, model) entries: which entry a variation runs on, and when it moves on.

Pure helpers of ``ImageOperation`` (no I/O). A variation moves to the route's next entry only
when the submit proved that nothing ran (``ProviderDown``: down before accepting, rate limited
past a bound, an empty prediction list); a moderation refusal, an invalid input, a failed job or
an unanswered POST end the variation where it is (docs/providers.md).
"""

from __future__ import annotations

from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.failures import FailureType
    from contracts.operation import (
        PreparedOperation,
        RouteAttempt,
        RouteStep,
        VariationResult,
        VariationStatus,
    )

ROUTES_PATCH = "provider-routes-with-fallback"


class ProviderDown(Exception):
    """Raised inside the workflow (never out of it): this entry ran nothing, try the next."""


def is_down(err: ActivityError) -> bool:
    cause = err.cause
    return isinstance(cause, ApplicationError) and cause.type == FailureType.PROVIDER_DOWN


def step_prepared(prepared: PreparedOperation, step: RouteStep) -> PreparedOperation:
    """The prepared operation as one route entry runs it (the hold stays the route's)."""
    return prepared.model_copy(
        update={
            "model_path": step.model_path,
            "inputs": step.inputs,
            "output_format": step.output_format,
            "poll": step.poll,
            "takes_seed": step.takes_seed,
            "provider": step.provider,
            "synchronous": step.synchronous,
            "unit_price_usd": step.unit_price_usd,
        }
    )


def route_attempt(step: RouteStep, outcome: str) -> RouteAttempt:
    return RouteAttempt(provider=step.provider, model_id=step.model_id, outcome=outcome[:300])


def finished(
    result: VariationResult, step: RouteStep, attempts: list[RouteAttempt]
) -> VariationResult:
    """The variation's result, saying who delivered (or failed) and every hop before."""
    delivered = result.status == VariationStatus.SUCCEEDED
    hops = [*attempts, route_attempt(step, "delivered" if delivered else f"failed: {result.error}")]
    return result.model_copy(
        update={"provider": step.provider, "model_id": step.model_id, "attempts": hops}
    )


def delivered_prices(
    prepared: PreparedOperation, delivered: list[VariationResult]
) -> dict[str, Decimal]:
    """Each delivered prediction's price: the price of the entry that delivered it."""
    price = {step.model_id: step.unit_price_usd for step in prepared.route}
    return {
        v.prediction_ids[-1]: price.get(v.model_id or "", prepared.unit_price_usd)
        for v in delivered
    }
