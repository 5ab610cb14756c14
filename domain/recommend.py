"""Which model to suggest for an operation: price, resolution, and the user's plan tier.

The seed's ``recommend_model``. The catalogue gives each model a tier (budget, mid, premium); how
much each plan leans to a tier is plan policy, so it lives here and not in the catalogue.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from contracts.errors import FieldError, InvalidRequestError
from providers.catalogue import SIZE_PATTERN, Catalogue, ModelSpec, Operation, Tier

__all__ = ["TIER_BONUS", "Recommendation", "recommend_model"]


class Recommendation(BaseModel):
    """The suggested model, why, and up to three runners-up."""

    model_config = ConfigDict(frozen=True)

    model: ModelSpec
    reason: str
    alternatives: tuple[ModelSpec, ...]


TIER_BONUS: dict[str, dict[Tier, float]] = {
    # Score points a model of each tier earns, per plan (unknown plans count as "free").
    "free": {Tier.BUDGET: 50, Tier.MID: 20, Tier.PREMIUM: 0},
    "basic": {Tier.BUDGET: 30, Tier.MID: 30, Tier.PREMIUM: 10},
    "pro": {Tier.BUDGET: 10, Tier.MID: 30, Tier.PREMIUM: 50},
    "enterprise": {Tier.BUDGET: 0, Tier.MID: 30, Tier.PREMIUM: 50},
}


def recommend_model(
    catalogue: Catalogue,
    operation: Operation,
    *,
    plan: str = "free",
    min_resolution: int | None = None,
    max_price_usd: Decimal | None = None,
) -> Recommendation:
    """The seed's ``recommend_model``: cheaper is better, larger outputs help, and the plan's tier
    tilts the choice (free plans lean to budget models, pro/enterprise to premium ones)."""
    candidates = [
        m
        for m in catalogue.for_operation(operation)
        if (max_price_usd is None or m.price_usd <= max_price_usd)
        and (min_resolution is None or _max_side(m) >= min_resolution)
    ]
    if not candidates:
        raise InvalidRequestError(
            f"no model for {operation} fits the constraints",
            [FieldError("min_resolution" if min_resolution else "max_price_usd", "no model fits")],
        )
    cheapest = min(m.price_usd for m in candidates) or Decimal("0.001")
    bonus = TIER_BONUS.get(plan, TIER_BONUS["free"])

    def score(m: ModelSpec) -> float:
        price_score = 50 * float(cheapest / m.price_usd) if m.price_usd else 50.0
        return (
            price_score
            + 20 * min(_max_side(m), 8192) / 8192
            + bonus[m.tier]
            + (5 if m.source == "code" else 0)
        )

    ranked = sorted(candidates, key=lambda m: (-score(m), m.price_usd, m.id))
    best = ranked[0]
    reason = (
        f"${best.price_usd} per run, {best.tier.value} tier"
        + (f", up to {best.max_resolution}" if best.max_resolution else "")
        + f"; best fit for the {plan} plan among {len(candidates)} {operation.value} model(s)"
    )
    return Recommendation(model=best, reason=reason, alternatives=tuple(ranked[1:4]))


def _max_side(spec: ModelSpec) -> int:
    """The longer side of the largest output, in pixels (1024 when the catalogue does not say)."""
    if spec.max_resolution:
        match = SIZE_PATTERN.fullmatch(spec.max_resolution)
        if match:
            return max(int(match[1]), int(match[2]))
    return 1024
