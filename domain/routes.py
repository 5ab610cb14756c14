"""``provider="auto"`` and quality tiers resolved to a route of (provider, model) entries.

The seed used only the first entry of its tier map; here the rest are fallbacks, tried only when
an entry provably ran nothing. Pure: the worker drops providers it has no key for (pre-flight).
"""

from __future__ import annotations

from contracts.errors import FieldError, InvalidRequestError
from providers.catalogue import Catalogue, ModelSpec, Operation

PROVIDERS = ("auto", "wavespeed", "stability", "huggingface", "gemini")
DEFAULT_TIER = "standard"


def resolve_route(
    catalogue: Catalogue,
    operation: Operation,
    provider: str,
    tier: str | None,
    model: str | None,
) -> list[ModelSpec]:
    """The models to try in order. An explicit ``model`` is a route of one (its provider must
    match a named one); otherwise the tier's route, filtered to ``provider`` unless ``auto``.

    Raises:
        InvalidRequestError: an unknown provider or tier, or a provider the route lacks.
    """
    if provider not in PROVIDERS:
        raise InvalidRequestError(
            f"unknown provider {provider!r}",
            [
                FieldError(
                    "options.provider",
                    f"unknown provider {provider!r}",
                    "one of " + ", ".join(PROVIDERS),
                )
            ],
        )
    if model is not None:
        spec = catalogue.resolve(operation, model)
        if provider not in ("auto", spec.provider):
            raise InvalidRequestError(
                f"model {model} is run by {spec.provider}, not {provider}",
                [
                    FieldError(
                        "options.provider",
                        f"model {model} is a {spec.provider} model",
                        spec.provider,
                    )
                ],
            )
        return [spec]
    route = list(catalogue.route(operation, tier or DEFAULT_TIER))
    if provider != "auto":
        route = [spec for spec in route if spec.provider == provider]
        if not route:
            route = [m for m in catalogue.for_operation(operation) if m.provider == provider][:1]
    if not route:
        raise InvalidRequestError(
            f"no {provider} model serves {operation}",
            [FieldError("options.provider", f"{provider} does not serve {operation}")],
        )
    return route


def route_ceiling(catalogue: Catalogue, model_ids: list[str]) -> ModelSpec:
    """The most expensive entry: what pre-flight reserves and a quote shows."""
    return max((catalogue.get(m) for m in model_ids), key=lambda spec: spec.price_usd)
