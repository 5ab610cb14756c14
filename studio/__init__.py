"""Image Studio Engine: durable AI image operations on Temporal. The faces callers touch.

``Studio`` (``studio.api``) is the Python API: one method per operation, inputs positional, then
keyword-only ``user_id=``, ``options=`` and ``idempotency_key=``::

    studio = await Studio.connect()
    result = await studio.generate_image("a cat", user_id="u1")

``StudioSync`` has the same methods, blocking. ``studio.run(model_id, input, user_id=)`` runs
any catalogue model; ``studio.operation(id)`` / ``studio.pipeline(id)`` reattach to a run, and
``handle.events()`` follows it.

The HTTP API is ``studio.http``, the CLI ``studio.cli``. Names are imported on first use, so
importing ``studio`` does not pull Temporal into light modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contracts.errors import (
        FieldError,
        InvalidRequestError,
        OperationFailedError,
        QuotaExceededError,
        StudioError,
    )
    from contracts.operation import BlobRef, OperationResult
    from contracts.pipeline import PipelineResult
    from domain.options import GenerateOptions, OperationOptions
    from providers.catalogue import ImageRole, Operation
    from studio.api import Studio
    from studio.events import ErrorEvent, ProgressEvent, ResultEvent, RunEvent
    from studio.handles import OperationHandle
    from studio.operations import Options
    from studio.pipelines import PipelineHandle, PipelineQuote
    from studio.sync import StudioSync

__all__ = [
    "BlobRef",
    "ErrorEvent",
    "FieldError",
    "GenerateOptions",
    "ImageRole",
    "InvalidRequestError",
    "Operation",
    "OperationFailedError",
    "OperationHandle",
    "OperationOptions",
    "OperationResult",
    "Options",
    "PipelineHandle",
    "PipelineQuote",
    "PipelineResult",
    "ProgressEvent",
    "QuotaExceededError",
    "ResultEvent",
    "RunEvent",
    "Studio",
    "StudioError",
    "StudioSync",
]

_HOME = {
    "Studio": "studio.api",
    "StudioSync": "studio.sync",
    "RunEvent": "studio.events",
    "ProgressEvent": "studio.events",
    "ResultEvent": "studio.events",
    "ErrorEvent": "studio.events",
    "OperationHandle": "studio.handles",
    "PipelineHandle": "studio.pipelines",
    "PipelineQuote": "studio.pipelines",
    "Options": "studio.operations",
    "GenerateOptions": "domain.options",
    "OperationOptions": "domain.options",
    "ImageRole": "providers.catalogue",
    "Operation": "providers.catalogue",
    "BlobRef": "contracts.operation",
    "OperationResult": "contracts.operation",
    "PipelineResult": "contracts.pipeline",
    "FieldError": "contracts.errors",
    "InvalidRequestError": "contracts.errors",
    "OperationFailedError": "contracts.errors",
    "QuotaExceededError": "contracts.errors",
    "StudioError": "contracts.errors",
}
"""The module each public name lives in; imported on first use, so a light import of one module
of this package does not pull in the rest."""


def __getattr__(name: str) -> Any:
    """Resolve a public name from its module on first use."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
