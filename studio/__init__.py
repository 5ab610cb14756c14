"""Image Studio Engine: durable AI image operations on Temporal.

The public entry points live in ``studio.api`` (``generate_image`` and friends) and are
re-exported here lazily so importing ``studio.contracts`` from workflow code stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["api"]


def __getattr__(name: str) -> Any:
    if name == "api":
        import importlib

        return importlib.import_module("studio.api")
    raise AttributeError(name)
