"""The HTTP API: one module per resource (operations, pipelines, runs, files, webhooks).

``create_app`` builds the FastAPI application; run it with ``studio api``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.http.app import create_app

__all__ = [
    "create_app",
]

_HOME = {
    "create_app": "studio.http.app",
}
"""The module each public name lives in; imported on first use, so a light import of one module
of this package does not pull in the rest."""


def __getattr__(name: str) -> Any:
    """Resolve a public name from its module on first use."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
