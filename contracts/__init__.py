"""The ground floor: the data that crosses workflow and activity boundaries, and the errors.

Everything above imports from here; this package imports nothing of ours. Image bytes and
secrets never appear in these types (Temporal payloads are limited to 2 MB and history is
forever): files travel as ``BlobRef``s, keys stay in the workers' environment. The activity
arguments (``SubmitRequest``, ``StoreRequest``...) live in ``contracts.operation`` and
``contracts.pipeline``; listed here is what callers of the engine meet.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contracts.errors import (
        FieldError,
        IdempotencyKeyReusedError,
        InvalidRequestError,
        OperationFailedError,
        OwnershipConflictError,
        QuotaExceededError,
        StudioError,
    )
    from contracts.failures import FailureType
    from contracts.maintenance import MaintenanceReport, MaintenanceRequest
    from contracts.operation import (
        BlobRef,
        OperationPhase,
        OperationProgress,
        OperationRequest,
        OperationResult,
        OutputKind,
        PredictionHint,
        StoredOutput,
        VariationResult,
        blob_refs,
    )
    from contracts.pipeline import (
        PipelineProgress,
        PipelineResult,
        PipelineRunRequest,
        StepProgress,
    )
    from contracts.search import (
        ALL_KEYS,
        STUDIO_MODEL,
        STUDIO_OPERATION,
        STUDIO_PIPELINE,
        STUDIO_STATUS,
        STUDIO_USER,
    )

__all__ = [
    "ALL_KEYS",
    "blob_refs",
    "BlobRef",
    "FailureType",
    "FieldError",
    "IdempotencyKeyReusedError",
    "InvalidRequestError",
    "MaintenanceReport",
    "MaintenanceRequest",
    "OperationFailedError",
    "OperationPhase",
    "OwnershipConflictError",
    "OperationProgress",
    "OperationRequest",
    "OperationResult",
    "OutputKind",
    "PipelineProgress",
    "PipelineResult",
    "PipelineRunRequest",
    "PredictionHint",
    "QuotaExceededError",
    "StepProgress",
    "StoredOutput",
    "STUDIO_MODEL",
    "STUDIO_OPERATION",
    "STUDIO_PIPELINE",
    "STUDIO_STATUS",
    "STUDIO_USER",
    "StudioError",
    "VariationResult",
]

_HOME = {
    "FieldError": "contracts.errors",
    "IdempotencyKeyReusedError": "contracts.errors",
    "InvalidRequestError": "contracts.errors",
    "OperationFailedError": "contracts.errors",
    "OwnershipConflictError": "contracts.errors",
    "QuotaExceededError": "contracts.errors",
    "StudioError": "contracts.errors",
    "FailureType": "contracts.failures",
    "MaintenanceReport": "contracts.maintenance",
    "MaintenanceRequest": "contracts.maintenance",
    "BlobRef": "contracts.operation",
    "OperationPhase": "contracts.operation",
    "OperationProgress": "contracts.operation",
    "OperationRequest": "contracts.operation",
    "OperationResult": "contracts.operation",
    "OutputKind": "contracts.operation",
    "PredictionHint": "contracts.operation",
    "StoredOutput": "contracts.operation",
    "VariationResult": "contracts.operation",
    "blob_refs": "contracts.operation",
    "PipelineProgress": "contracts.pipeline",
    "PipelineResult": "contracts.pipeline",
    "PipelineRunRequest": "contracts.pipeline",
    "StepProgress": "contracts.pipeline",
    "ALL_KEYS": "contracts.search",
    "STUDIO_MODEL": "contracts.search",
    "STUDIO_OPERATION": "contracts.search",
    "STUDIO_PIPELINE": "contracts.search",
    "STUDIO_STATUS": "contracts.search",
    "STUDIO_USER": "contracts.search",
}
"""The module each public name lives in; imported on first use, so a light import of one module
of this package does not pull in the rest."""


def __getattr__(name: str) -> Any:
    """Resolve a public name from its module on first use."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
