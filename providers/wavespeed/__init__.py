"""The WaveSpeed AI v3 client: typed wire models, errors marked retryable or not, webhooks."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from providers.wavespeed.client import WaveSpeedClient
    from providers.wavespeed.errors import AmbiguousSubmitError, WaveSpeedError
    from providers.wavespeed.webhooks import SignatureError, sign, verify
    from providers.wavespeed.wire import Prediction, PredictionPage

__all__ = [
    "AmbiguousSubmitError",
    "Prediction",
    "PredictionPage",
    "sign",
    "SignatureError",
    "verify",
    "WaveSpeedClient",
    "WaveSpeedError",
]

_HOME = {
    "WaveSpeedClient": "providers.wavespeed.client",
    "AmbiguousSubmitError": "providers.wavespeed.errors",
    "WaveSpeedError": "providers.wavespeed.errors",
    "SignatureError": "providers.wavespeed.webhooks",
    "sign": "providers.wavespeed.webhooks",
    "verify": "providers.wavespeed.webhooks",
    "Prediction": "providers.wavespeed.wire",
    "PredictionPage": "providers.wavespeed.wire",
}
"""The module each public name lives in; imported on first use, so a light import of one module
of this package does not pull in the rest."""


def __getattr__(name: str) -> Any:
    """Resolve a public name from its module on first use."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
