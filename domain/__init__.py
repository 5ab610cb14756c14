"""Floor 4: the request and pipeline domain: friendly arguments to model-native requests, Create
Studio presets, prices, plan policy (quota categories, recommendations), and declarative pipelines
(``domain.pipelines``). Pure logic over the catalogue, the ledger and the blob store; no Temporal
calls."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from domain.create_studio import CreatePlan, load_create_studio, plan_create
    from domain.options import GenerateOptions, OperationOptions, parse_options
    from domain.pricing import CostEstimate, EstimateItem, estimate_cost
    from domain.quota import QuotaCategory, quota_category
    from domain.recommend import Recommendation, recommend_model
    from domain.requests import compose_request, id_part
    from domain.run_ids import fingerprint, new_operation_id, new_pipeline_id

__all__ = [
    "compose_request",
    "CostEstimate",
    "CreatePlan",
    "estimate_cost",
    "EstimateItem",
    "GenerateOptions",
    "id_part",
    "load_create_studio",
    "new_operation_id",
    "new_pipeline_id",
    "fingerprint",
    "OperationOptions",
    "parse_options",
    "plan_create",
    "quota_category",
    "QuotaCategory",
    "recommend_model",
    "Recommendation",
]

_HOME = {
    "CreatePlan": "domain.create_studio",
    "load_create_studio": "domain.create_studio",
    "plan_create": "domain.create_studio",
    "GenerateOptions": "domain.options",
    "OperationOptions": "domain.options",
    "parse_options": "domain.options",
    "CostEstimate": "domain.pricing",
    "EstimateItem": "domain.pricing",
    "estimate_cost": "domain.pricing",
    "QuotaCategory": "domain.quota",
    "quota_category": "domain.quota",
    "Recommendation": "domain.recommend",
    "recommend_model": "domain.recommend",
    "compose_request": "domain.requests",
    "id_part": "domain.requests",
    "new_operation_id": "domain.run_ids",
    "new_pipeline_id": "domain.run_ids",
    "fingerprint": "domain.run_ids",
}
"""The module each public name lives in; imported on first use, so a light import of one module
of this package does not pull in the rest."""


def __getattr__(name: str) -> Any:
    """Resolve a public name from its module on first use."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
