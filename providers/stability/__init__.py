"""Stability AI's v2beta Stable Image REST API over httpx (no official async SDK)."""

from __future__ import annotations

from providers.stability.client import StabilityClient

__all__ = ["StabilityClient"]
