"""Floor 1: what the engine knows about image providers.

The model catalogue (``catalogue.yaml``, the single source of truth for validation, routing and
prices), the provider protocol (``base.py``), the WaveSpeed client (``providers.wavespeed``) and
the URL guard every outbound fetch goes through. No billing policy: that is ``domain``'s.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from providers.base import PredictionProvider
    from providers.catalogue import (
        Catalogue,
        ImageRole,
        InputField,
        ModelSpec,
        Operation,
        Tier,
        export_model_list,
        load_catalogue,
    )
    from providers.url_guard import UnsafeUrlError, UrlFetchError, check_url, fetch_public_url

__all__ = [
    "Catalogue",
    "check_url",
    "export_model_list",
    "fetch_public_url",
    "ImageRole",
    "InputField",
    "load_catalogue",
    "ModelSpec",
    "Operation",
    "PredictionProvider",
    "Tier",
    "UnsafeUrlError",
    "UrlFetchError",
]

_HOME = {
    "PredictionProvider": "providers.base",
    "Catalogue": "providers.catalogue",
    "ImageRole": "providers.catalogue",
    "InputField": "providers.catalogue",
    "ModelSpec": "providers.catalogue",
    "Operation": "providers.catalogue",
    "Tier": "providers.catalogue",
    "export_model_list": "providers.catalogue",
    "load_catalogue": "providers.catalogue",
    "UnsafeUrlError": "providers.url_guard",
    "UrlFetchError": "providers.url_guard",
    "check_url": "providers.url_guard",
    "fetch_public_url": "providers.url_guard",
}
"""The module each public name lives in; imported on first use, so a light import of one module
of this package does not pull in the rest."""


def __getattr__(name: str) -> Any:
    """Resolve a public name from its module on first use."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
