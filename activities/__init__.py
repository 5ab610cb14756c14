"""Floor 5: the I/O Temporal retries: pre-flight, upload, submit, wait, store, settle, pipeline
bookkeeping and maintenance. ``StudioResources`` is what a worker builds once and hands to all."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from activities.maintenance import MaintenanceActivities
    from activities.pipeline import PipelineActivities
    from activities.preflight import PreflightActivities
    from activities.resources import StudioResources
    from activities.store import StoreActivities
    from activities.submit import SubmitActivities
    from activities.uploads import UploadActivities
    from activities.usage import UsageActivities
    from activities.wait import WaitActivities
    from activities.webhooks import WebhookActivities

__all__ = [
    "MaintenanceActivities",
    "PipelineActivities",
    "PreflightActivities",
    "StoreActivities",
    "StudioResources",
    "SubmitActivities",
    "UploadActivities",
    "UsageActivities",
    "WaitActivities",
    "WebhookActivities",
]

_HOME = {
    "MaintenanceActivities": "activities.maintenance",
    "PipelineActivities": "activities.pipeline",
    "PreflightActivities": "activities.preflight",
    "StudioResources": "activities.resources",
    "StoreActivities": "activities.store",
    "SubmitActivities": "activities.submit",
    "UploadActivities": "activities.uploads",
    "UsageActivities": "activities.usage",
    "WaitActivities": "activities.wait",
    "WebhookActivities": "activities.webhooks",
}
"""The module each public name lives in; imported on first use, so a light import of one module
of this package does not pull in the rest."""


def __getattr__(name: str) -> Any:
    """Resolve a public name from its module on first use."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
