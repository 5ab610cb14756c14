"""Cost estimates from the catalogue, before anything runs.

Uses the same per-model price that pre-flight reserves and settlement charges, so a quote for a
request is exactly what a fully successful run of it costs.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from providers.catalogue import Catalogue, Operation
from studio.contracts import OperationRequest


class EstimateItem(BaseModel):
    """A request reduced to what its price depends on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operation: Operation
    model: str | None = None
    num_variations: int = Field(default=1, ge=1, le=10)


class CostLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    operation: str
    model_id: str
    unit_price_usd: Decimal
    quantity: int
    subtotal_usd: Decimal


class CostEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    lines: list[CostLine]
    total_usd: Decimal
    currency: str = "USD"


def estimate_cost(
    catalogue: Catalogue,
    requests: OperationRequest | EstimateItem | Iterable[OperationRequest | EstimateItem],
) -> CostEstimate:
    items = [requests] if isinstance(requests, (OperationRequest, EstimateItem)) else list(requests)
    lines = [_line(catalogue, item) for item in items]
    return CostEstimate(
        lines=lines, total_usd=sum((line.subtotal_usd for line in lines), Decimal("0"))
    )


def _line(catalogue: Catalogue, item: OperationRequest | EstimateItem) -> CostLine:
    if isinstance(item, OperationRequest):
        operation, model, quantity = Operation(item.operation), item.model_id, item.num_variations
    else:
        operation, model, quantity = item.operation, item.model, item.num_variations
    spec = catalogue.resolve(operation, model)
    return CostLine(
        operation=operation.value,
        model_id=spec.id,
        unit_price_usd=spec.price_usd,
        quantity=quantity,
        subtotal_usd=spec.price_usd * quantity,
    )
