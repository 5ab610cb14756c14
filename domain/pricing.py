"""Cost estimates from the catalogue, before anything runs.

Uses the same per-model price that pre-flight reserves and settlement charges, so a quote for a
request is exactly what a fully successful run of it costs. A routed request (``provider="auto"``)
is quoted at its route's ceiling: a run costs at most that, less when a cheaper entry delivers.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from contracts.operation import OperationRequest
from domain.routes import route_ceiling
from providers.catalogue import Catalogue, Operation


class EstimateItem(BaseModel):
    """A request reduced to what its price depends on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operation: Operation
    model: str | None = None
    num_variations: int = Field(default=1, ge=1, le=10)


class CostLine(BaseModel):
    """One operation in an estimate: model, unit price, quantity and subtotal."""

    model_config = ConfigDict(frozen=True)

    operation: str
    model_id: str
    unit_price_usd: Decimal
    quantity: int
    subtotal_usd: Decimal


class CostEstimate(BaseModel):
    """The estimated cost of one or more operations, per line and in total."""

    model_config = ConfigDict(frozen=True)

    lines: list[CostLine]
    total_usd: Decimal
    currency: str = "USD"


def estimate_cost(
    catalogue: Catalogue,
    requests: OperationRequest | EstimateItem | Iterable[OperationRequest | EstimateItem],
) -> CostEstimate:
    """What operations cost at catalogue prices (the most they can cost: every variation delivered).

    Raises:
        InvalidRequestError: an unknown model, or one that does not serve the operation.
    """
    items = [requests] if isinstance(requests, (OperationRequest, EstimateItem)) else list(requests)
    lines = [_line(catalogue, item) for item in items]
    return CostEstimate(
        lines=lines, total_usd=sum((line.subtotal_usd for line in lines), Decimal("0"))
    )


def _line(catalogue: Catalogue, item: OperationRequest | EstimateItem) -> CostLine:
    model: str | None
    if isinstance(item, OperationRequest):
        operation, model, quantity = Operation(item.operation), item.model_id, item.num_variations
    else:
        operation, model, quantity = item.operation, item.model, item.num_variations
    spec = catalogue.resolve(operation, model)
    if isinstance(item, OperationRequest) and item.fallbacks:
        # A route is quoted at its ceiling: what pre-flight reserves, the most it can cost.
        spec = route_ceiling(catalogue, [spec.id, *(e.model_id for e in item.fallbacks)])
    return CostLine(
        operation=operation.value,
        model_id=spec.id,
        unit_price_usd=spec.price_usd,
        quantity=quantity,
        subtotal_usd=spec.price_usd * quantity,
    )
