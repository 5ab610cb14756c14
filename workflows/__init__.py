"""Floor 6: the durable decisions. Deterministic, thin, provider-neutral: ``ImageOperation`` runs
one operation, ``ImagePipeline`` chains steps as child operations, ``LedgerMaintenance`` keeps the
ledger honest, ``AbandonedPredictions`` accounts for what a run that ended before charging left
at the provider, ``CallerWebhook`` tells a caller how a run ended. Activity options are typed
``ActivityPolicy`` values (``workflows.policies``)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workflows.abandoned import AbandonedPredictionsWorkflow
    from workflows.maintenance import LedgerMaintenanceWorkflow
    from workflows.operation import ImageOperationWorkflow
    from workflows.pipeline import ImagePipelineWorkflow
    from workflows.policies import ActivityPolicy
    from workflows.webhooks import CallerWebhookWorkflow

__all__ = [
    "AbandonedPredictionsWorkflow",
    "ActivityPolicy",
    "CallerWebhookWorkflow",
    "ImageOperationWorkflow",
    "ImagePipelineWorkflow",
    "LedgerMaintenanceWorkflow",
]

_HOME = {
    "AbandonedPredictionsWorkflow": "workflows.abandoned",
    "LedgerMaintenanceWorkflow": "workflows.maintenance",
    "ImageOperationWorkflow": "workflows.operation",
    "ImagePipelineWorkflow": "workflows.pipeline",
    "ActivityPolicy": "workflows.policies",
    "CallerWebhookWorkflow": "workflows.webhooks",
}
"""The module each public name lives in; imported on first use, so a light import of one module
of this package does not pull in the rest."""


def __getattr__(name: str) -> Any:
    """Resolve a public name from its module on first use."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
